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
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from test_finetune import _cfg, write_rte

import bort.training.run as run_mod
from bort.cli import main
from bort.errors import BortError
from bort.extract.store import RunStore
from bort.finetune.recipe import finetune
from bort.pretrain.recipe import PretrainConfig
from bort.training.tracking import check_report_to


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


def test_tensorboard_gets_every_evaluation_of_pretraining(tmp_path, bert_teacher, corpus_file):
    out = tmp_path / "pt"
    assert main(_pretrain_args(bert_teacher, out, corpus_file)) == 0
    assert list((out / "runs").glob("events.out.tfevents.*"))
    acc, lines = _events(out), _jsonl(out / "metrics.jsonl")
    assert {"loss", "tokens", "mlm_accuracy", "kd_ce"} <= set(acc.Tags()["scalars"])
    for tag in ("loss", "mlm_accuracy", "kd_ce"):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [line["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
        assert [e.value for e in events] == pytest.approx([line[tag] for line in lines], rel=1e-6)


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
    assert [e.step for e in _events(out).Scalars("loss")] == [1, 2, 3, 4]
    monkeypatch.setattr(run_mod, "save_checkpoint", real_save)
    assert main(_pretrain_args(bert_teacher, out, corpus_file)) == 0

    files = sorted((out / "runs").glob("events.out.tfevents.*"), key=lambda p: int(p.name.rsplit(".", 1)[-1]))
    assert len(files) == 2  # the second session appended a file; the first one's stays
    starts = [e.step for e in EventFileLoader(str(files[1])).Load() if e.HasField("session_log") and e.session_log.status == 1]
    assert starts == [3]  # SessionLog.START at the resumed step: TensorBoard hides the first session's steps 3 and 4
    events, lines = _events(out).Scalars("loss"), _jsonl(out / "metrics.jsonl")
    assert [e.step for e in events] == [line["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert [e.value for e in events] == pytest.approx([line["loss"] for line in lines], rel=1e-6)


@pytest.fixture(scope="module")
def rte(tmp_path_factory) -> Path:
    return write_rte(tmp_path_factory.mktemp("RTE"), n_train=64, n_dev=24)


def test_tensorboard_gets_finetuning_dev_metrics(tmp_path, bert_teacher, rte):
    out = tmp_path / "ft"
    finetune(_cfg(bert_teacher, "glue/rte", rte, out, epochs=2, report_to="tensorboard"))
    acc, lines = _events(out), _jsonl(out / "log.jsonl")
    for tag in ("select_accuracy", "train_loss", "epoch"):  # the metric that chooses, on the held-out slice of the training set
        assert [(e.step, pytest.approx(e.value, rel=1e-6)) for e in acc.Scalars(tag)] == [(line["step"], line[tag]) for line in lines]


def test_tensorboard_gets_each_extraction_trial(tmp_path, bert_teacher, extract_args):
    out = tmp_path / "run"
    assert main(extract_args(bert_teacher, out, "--epsilon", "4", "--report-to", "tensorboard")) == 0
    acc = _events(out)
    assert {"error", "params", "latency_ms", "flops", "s", "w"} <= set(acc.Tags()["scalars"])
    result = json.loads((out / "result.json").read_text())
    trained = [r for r in result["candidates"] if r["status"] == "trained"]
    with sqlite3.connect(out / RunStore.FILENAME) as db:
        n_trials = db.execute("SELECT COUNT(*) FROM trial").fetchone()[0]
    errors = acc.Scalars("error")
    assert [e.step for e in errors] == list(range(1, n_trials + 1)) and n_trials == len(trained) == result["evaluated"]
    # Each trial's ê, p̂ and W, as result.json has them (a trial's step pairs its scalars).
    got = sorted((p.value, e.value, w.value) for p, e, w in zip(acc.Scalars("params"), errors, acc.Scalars("w"), strict=True))
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


def test_an_unknown_tracker_is_refused():
    with pytest.raises(BortError, match="--report-to must be one of none, tensorboard, wandb, mlflow, got 'comet'"):
        check_report_to("comet")


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
    logged = [(c[1], c[2]) for c in calls if c[0] == "log"]
    assert logged == [(line["step"], {k: float(v) for k, v in line.items() if k != "step"}) for line in lines]


def test_mlflow_run_gets_the_log_lines(tmp_path, monkeypatch, bert_teacher, rte):
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
    finetune(_cfg(bert_teacher, "glue/rte", rte, out, epochs=2, report_to="mlflow"))
    lines = _jsonl(out / "log.jsonl")
    assert calls[:2] == [("experiment", "bort"), ("run", "7", "finetune ft")] and calls[-1] == ("end", "r1")
    assert calls[2][0] == "params" and calls[2][2]["optim.lr"] == "0.001" and calls[2][2]["task"] == "glue/rte"
    metrics = [(c[4], c[2], c[3]) for c in calls if c[0] == "metric"]
    assert metrics == [(line["step"], k, float(v)) for line in lines for k, v in line.items() if k != "step"]
