"""``--report-to``: TensorBoard event files under OUT/runs/ that hold the scalars of metrics.jsonl, appended on
resume without a step shown twice; the one-line error when W&B or MLflow is missing; and the calls a W&B or
MLflow run gets (the libraries replaced by recorders, as neither is installed here)."""

from __future__ import annotations

import importlib.machinery
import json
import sqlite3
import sys
import types
from pathlib import Path

import pytest
from conftest import SEQ_LEN
from glue_files import _cfg, write_rte
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

import bort.training.run as run_mod
from bort.cli import main
from bort.errors import BortError
from bort.extract.store import RunStore
from bort.finetune.recipe import finetune
from bort.pretrain.recipe import PretrainConfig
from bort.training.tracking import check_report_to, chosen


def _pretrain_args(teacher, out, corpus, *extra):
    return ["pretrain", "--teacher", str(teacher), "--out", str(out), "--corpus", str(corpus), "--arch", "1,2,32,64",
            "--seq-len", str(SEQ_LEN), "--steps", "6", "--batch-size", "4", "--save-every", "2", "--eval-every", "1",
            "--eval-sequences", "8", "--bf16", "off", "--device", "cpu", "--no-progress", "--report-to", "tensorboard", *extra]


def _events(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder / "runs"))
    acc.Reload()
    return acc


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tensorboard_gets_pretraining_steps_evaluations_and_settings(tmp_path, bert_teacher, corpus_file):
    """Trainer's names: train/loss (the mean step loss since the last point), train/learning_rate (the schedule's, recomputed
    here), train/grad_norm every --logging-steps; eval/<term> and eval/loss (the held-out objective) at evaluations."""
    out = tmp_path / "pt"
    args = _pretrain_args(bert_teacher, out, corpus_file, "--logging-steps", "2", "--alpha-mlm", "0", "--alpha-kd", "1", "--temperature", "1",
                          "--alpha-hidden", "0.5", "--lr", "1e-3", "--warmup", "0.5")
    assert main(args) == 0
    assert list((out / "runs").glob("events.out.tfevents.*"))
    acc, lines = _events(out), _jsonl(out / "metrics.jsonl")
    assert [line["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
    for tag in ("mlm_accuracy", "kd_kl", "hidden_mse"):
        assert [(e.step, e.value) for e in acc.Scalars(f"eval/{tag}")] == [(line["step"], pytest.approx(line[tag], rel=1e-6)) for line in lines]
    # eval/loss: α_kd·τ²·KL at τ = 1 plus α_hidden·MSE, from the terms logged one by one
    assert [e.value for e in acc.Scalars("eval/loss")] == [pytest.approx(line["kd_kl"] + 0.5 * line["hidden_mse"], rel=1e-5) for line in lines]
    train = acc.Scalars("train/loss")
    assert [e.step for e in train] == [2, 4, 6]
    step_loss = {line["step"]: line["loss"] for line in lines}  # each evaluation's line holds that step's loss
    assert [e.value for e in train] == [pytest.approx((step_loss[s - 1] + step_loss[s]) / 2, rel=1e-5) for s in (2, 4, 6)]
    warm = 3  # 0.5 × 6 steps; step s (1-based) runs at lr · s/3 in the warm-up, then lr · (6 − (s − 1))/3
    want_lr = [1e-3 * (s / warm if s <= warm else (6 - (s - 1)) / (6 - warm)) for s in (2, 4, 6)]
    assert [e.value for e in acc.Scalars("train/learning_rate")] == [pytest.approx(x, rel=1e-5) for x in want_lr]
    assert all(e.value > 0 for e in acc.Scalars("train/grad_norm"))
    settings = json.loads((out / "pretrain_settings.json").read_text())
    text = acc.Tensors("settings/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(text.strip("`\n"))["optim"]["lr"] == settings["optim"]["lr"] == 1e-3
    hparams = [v for e in EventFileLoader(str(next((out / "runs").glob("events.*")))).Load() if e.HasField("summary")
               for v in e.summary.value if v.metadata.plugin_data.plugin_name == "hparams"]
    assert hparams  # the settings as HPARAMS, in the run's own event file


def test_resumed_run_appends_and_shows_each_step_once(tmp_path, monkeypatch, bert_teacher, corpus_file):
    """Killed at step 4 before its checkpoint (the last one is step 2): the resumed run redoes steps 3 and 4,
    and its event file starts by purging the first session's events from step 3 on."""
    real_save = run_mod.save_checkpoint

    def die_at_4(folder, model, optimizer, scheduler, state, extra=None):
        if state.step == 4:
            raise KeyboardInterrupt
        real_save(folder, model, optimizer, scheduler, state, extra)

    out = tmp_path / "pt"
    monkeypatch.setattr(run_mod, "save_checkpoint", die_at_4)
    assert main(_pretrain_args(bert_teacher, out, corpus_file)) == 130
    assert [e.step for e in _events(out).Scalars("eval/mlm_accuracy")] == [1, 2, 3, 4]
    monkeypatch.setattr(run_mod, "save_checkpoint", real_save)
    assert main(_pretrain_args(bert_teacher, out, corpus_file)) == 0

    files = sorted((out / "runs").glob("events.out.tfevents.*"), key=lambda p: int(p.name.rsplit(".", 1)[-1]))
    assert len(files) == 2  # the second session appended a file; the first one's stays
    starts = [e.step for e in EventFileLoader(str(files[1])).Load() if e.HasField("session_log") and e.session_log.status == 1]
    assert starts == [3]  # SessionLog.START at the resumed step: TensorBoard hides the first session's steps 3 and 4
    events, lines = _events(out).Scalars("eval/mlm_accuracy"), _jsonl(out / "metrics.jsonl")
    assert [e.step for e in events] == [line["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert [e.value for e in events] == pytest.approx([line["mlm_accuracy"] for line in lines], rel=1e-6)


@pytest.fixture(scope="module")
def rte(tmp_path_factory) -> Path:
    return write_rte(tmp_path_factory.mktemp("RTE"), n_train=64, n_dev=24)


def test_tensorboard_gets_finetuning_evaluations_and_steps(tmp_path, bert_teacher, rte):
    out = tmp_path / "ft"
    finetune(_cfg(bert_teacher, "glue/rte", rte, out, epochs=2, report_to="tensorboard", logging_steps=1))
    acc, lines = _events(out), _jsonl(out / "log.jsonl")
    # the metric that chooses, on the held-out slice of the training set
    assert [(e.step, e.value) for e in acc.Scalars("eval/accuracy")] == [(line["step"], pytest.approx(line["select_accuracy"], rel=1e-6)) for line in lines]
    assert [e.step for e in acc.Scalars("eval/loss")] == [line["step"] for line in lines]
    assert all(0 < e.value < 5 for e in acc.Scalars("eval/loss"))  # a cross-entropy over two labels, from a near-chance model
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == list(range(1, lines[-1]["step"] + 1))  # every step, at --logging-steps 1
    per_epoch = lines[-1]["step"] / lines[-1]["epoch"]
    assert [e.value for e in acc.Scalars("train/epoch")] == [pytest.approx(s / per_epoch, rel=1e-6) for s in steps]


def test_the_eval_loss_is_the_models_own_loss_to_the_gold_labels(bert_teacher, rte):
    """gold_loss against the stock head's own loss (labels passed to the model), on the same examples."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bort.finetune.recipe import gold_loss
    from bort.tasks.registry import get_task

    task = get_task("glue/rte")
    model = AutoModelForSequenceClassification.from_pretrained(bert_teacher, num_labels=2).eval()
    tok = AutoTokenizer.from_pretrained(bert_teacher)
    enc = tok(["a b c", "d e", "f g h i"], ["x y", "z", "w v u"], padding=True, return_tensors="pt")
    labels = torch.tensor([0, 1, 1])
    with torch.no_grad():
        out = model(**enc, labels=labels)
    features = [types.SimpleNamespace(target=int(t)) for t in labels]
    assert gold_loss(task, out.logits, features) == pytest.approx(float(out.loss), rel=1e-6)


def test_tensorboard_gets_each_extraction_trial(tmp_path, bert_teacher, extract_args):
    out = tmp_path / "run"
    assert main(extract_args(bert_teacher, out, "--epsilon", "4", "--report-to", "tensorboard")) == 0
    acc = _events(out)
    assert {f"trial/{k}" for k in ("error", "params", "latency_ms", "flops", "s", "w")} <= set(acc.Tags()["scalars"])
    result = json.loads((out / "result.json").read_text())
    trained = [r for r in result["candidates"] if r["status"] == "trained"]
    with sqlite3.connect(out / RunStore.FILENAME) as db:
        n_trials = db.execute("SELECT COUNT(*) FROM trial").fetchone()[0]
    errors = acc.Scalars("trial/error")
    assert [e.step for e in errors] == list(range(1, n_trials + 1)) and n_trials == len(trained) == result["evaluated"]
    # Each trial's ê, p̂ and W, as result.json has them (a trial's step pairs its scalars).
    got = sorted((p.value, e.value, w.value) for p, e, w in zip(acc.Scalars("trial/params"), errors, acc.Scalars("trial/w"), strict=True))
    want = sorted((r["params"], r["error"], r["w"]) for r in trained)
    assert got == [pytest.approx(row, rel=1e-5) for row in want]


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_a_missing_tracker_is_one_line_naming_the_package(name, tmp_path, monkeypatch, capsys, bert_teacher, corpus_file):
    monkeypatch.setitem(sys.modules, name, None)  # importing it fails, as where it is not installed
    with pytest.raises(BortError, match=rf"--report-to {name} needs the {name} package: run `pip install .*{name}"):
        check_report_to(name)
    with pytest.raises(BortError, match="pip install"):
        PretrainConfig(out=tmp_path / "x", arch=None, student=str(bert_teacher), report_to=name)
    out = tmp_path / "pt"
    assert main(_pretrain_args(bert_teacher, out, corpus_file, "--report-to", name)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install" in err[0] and name in err[0]
    assert not out.exists()  # refused at config time: no folder, no work


def test_report_to_names_are_checked_and_all_is_the_installed_trackers(monkeypatch):
    with pytest.raises(BortError, match="--report-to takes none, tensorboard, wandb, mlflow or all, got 'comet'"):
        check_report_to("comet")
    for names in (("none", "tensorboard"), ("all", "tensorboard"), ()):
        with pytest.raises(BortError, match="--report-to takes none, all, or one or more of tensorboard, wandb, mlflow"):
            check_report_to(names)
    assert check_report_to("tensorboard") == ("tensorboard",)  # one name may come as a string (the Python API)
    assert chosen(("tensorboard", "tensorboard")) == ("tensorboard",) and chosen(("none",)) == ()
    _fake_module(monkeypatch, "mlflow")
    monkeypatch.setitem(sys.modules, "wandb", None)
    assert chosen(("all",)) == ("tensorboard", "mlflow")  # Trainer's "all": every tracker whose package is installed


def test_several_trackers_on_the_command_line_and_in_a_config(tmp_path):
    from bort import cli, options
    from bort.finetune.recipe import FinetuneConfig

    def built(*argv: str) -> FinetuneConfig:
        return options.build(FinetuneConfig, options.parse_args(cli.build_parser(), ["finetune", "--model", "m", "--out", "o", "--task", "glue/rte", *argv]))

    (tmp_path / "c.yaml").write_text("report_to: [tensorboard, mlflow]\nlogging_steps: 3\n")
    monkeypatch = pytest.MonkeyPatch()
    with monkeypatch.context() as m:
        _fake_module(m, "mlflow")
        assert built("--report_to", "tensorboard", "mlflow").report_to == ("tensorboard", "mlflow")  # Trainer's spelling, several names
        assert built("--report-to", "tensorboard", "--report-to", "mlflow").report_to == ("tensorboard", "mlflow")
        from_file = built("--config", str(tmp_path / "c.yaml"))
        assert (from_file.report_to, from_file.logging_steps) == (("tensorboard", "mlflow"), 3)
    assert built().report_to == ("none",) and built().logging_steps == 10
    with pytest.raises(BortError, match="--report-to takes none, all, or one or more"):
        built("--report-to", "tensorboard", "all")
    with pytest.raises(BortError, match="--logging-steps must be 1 or more, got 0"):
        built("--logging_steps", "0")


def _fake_module(monkeypatch, name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # found by importlib.util.find_spec
    module.__dict__.update(attrs)
    monkeypatch.setitem(sys.modules, name, module)
    return module


def test_wandb_run_gets_the_log_lines(tmp_path, monkeypatch, bert_teacher, rte):
    calls = []

    class Run:
        def log(self, scalars, step):
            calls.append(("log", step, scalars))

        def finish(self):
            calls.append(("finish",))

    def init(**kw):
        calls.append(("init", kw))
        return Run()

    _fake_module(monkeypatch, "wandb", init=init)
    out = tmp_path / "ft"
    finetune(_cfg(bert_teacher, "glue/rte", rte, out, epochs=2, report_to="wandb"))
    lines = _jsonl(out / "log.jsonl")
    assert calls[0][0] == "init" and calls[-1] == ("finish",)
    kw = calls[0][1]
    assert kw["project"] == "bort" and kw["name"] == "finetune ft" and kw["reinit"] == "create_new" and kw["dir"] == str(out)
    assert kw["config"]["optim"]["lr"] == 1e-3  # the run's settings
    evals = [(c[1], c[2]) for c in calls if c[0] == "log" and "eval/accuracy" in c[2]]
    assert [(step, {k: v for k, v in got.items() if k != "eval/loss"}) for step, got in evals] == \
        [(line["step"], {"eval/accuracy": line["select_accuracy"]}) for line in lines]
    trained = [c[1] for c in calls if c[0] == "log" and "train/loss" in c[2]]
    assert trained == list(range(10, lines[-1]["step"] + 1, 10))  # every --logging-steps (10)


def test_mlflow_run_gets_what_tensorboard_gets_beside_it(tmp_path, monkeypatch, bert_teacher, rte):
    calls = []

    class Client:
        def get_experiment_by_name(self, name):
            return None

        def create_experiment(self, name):
            calls.append(("experiment", name))
            return "7"

        def create_run(self, experiment_id, run_name):
            calls.append(("run", experiment_id, run_name))
            return types.SimpleNamespace(info=types.SimpleNamespace(run_id="r1"))

        def log_batch(self, run_id, params):
            calls.append(("params", run_id, {p.key: p.value for p in params}))

        def log_metric(self, run_id, key, value, step):
            calls.append(("metric", run_id, key, value, step))

        def set_terminated(self, run_id):
            calls.append(("end", run_id))

    _fake_module(monkeypatch, "mlflow")
    _fake_module(monkeypatch, "mlflow.tracking", MlflowClient=Client)
    _fake_module(monkeypatch, "mlflow.entities", Param=lambda key, value: types.SimpleNamespace(key=key, value=value))
    out = tmp_path / "ft"
    finetune(_cfg(bert_teacher, "glue/rte", rte, out, epochs=2, report_to=("tensorboard", "mlflow"), logging_steps=3))
    lines = _jsonl(out / "log.jsonl")
    assert calls[:2] == [("experiment", "bort"), ("run", "7", "finetune ft")] and calls[-1] == ("end", "r1")
    assert calls[2][0] == "params" and calls[2][2]["optim.lr"] == "0.001" and calls[2][2]["task"] == "glue/rte"
    metrics = sorted((c[4], c[2], pytest.approx(c[3], rel=1e-6)) for c in calls if c[0] == "metric")
    acc = _events(out)
    assert metrics == sorted((e.step, tag, e.value) for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag))
    assert {"eval/accuracy", "eval/loss", "train/loss", "train/learning_rate", "train/grad_norm", "train/epoch"} == {m[1] for m in metrics}
    assert [m[0] for m in metrics if m[1] == "eval/accuracy"] == [line["step"] for line in lines]
