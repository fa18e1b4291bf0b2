"""Issue 36's fresh probe: what a second adversarial pass over the fixed tree still found, each case in the table's
contract (:func:`bad_inputs.check_refused`) or, where bort rightly goes on, with the result checked.

Ids carry ``#36.probe``: labels that would silently split one class in two, checkpoints that do not hold the whole
model (missing, resized or integer tensors), a negative number in scientific notation, a sequence length predict
refuses, a folder of the user's named like bort's swap folder, ``--out .``, and Agora's infill check before round 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from bad_inputs import (  # noqa: F401
    Case,
    Env,
    T,
    check_refused,
    classifier,
    env,
    export,
    model_copy,
    param,
    run_agora,
    run_bench,
    run_evaluate,
    run_export,
    run_finetune,
    run_predict,
    sst2,
)
from conftest import SEQ_LEN
from safetensors.torch import load_file, save_file

from bort.cli import main
from bort.errors import BortError
from bort.models.loading import from_folder

ROWS = 8


def own(e: Env, train: str, dev: str, suffix: str = "csv") -> list:
    """``bort finetune`` on one's own training and validation files, written into the case's folder."""
    e.write(f"train.{suffix}", train)
    e.write(f"dev.{suffix}", dev)
    return ["finetune", "--model", e.classifier, "--train-file", e.tmp / f"train.{suffix}", "--validation-file", e.tmp / f"dev.{suffix}",
            "--out", e.tmp / "out", "--steps", "1", "--batch-size", "4", "--max-seq-len", SEQ_LEN, "--device", "cpu", "--bf16", "off",
            "--no-progress"]


def jsonl(labels: list) -> str:
    return "".join(json.dumps({"text": f"text number {i}", "label": label}) + "\n" for i, label in enumerate(labels * ROWS))


def csv(labels: list[str]) -> str:
    return "text,label\n" + "".join(f"text number {i},{label}\n" for i, label in enumerate(labels * ROWS))


def weights(change):
    """Damage: ``change(state)`` applied to a model copy's ``model.safetensors``."""

    def damage(folder: Path) -> None:
        state = load_file(folder / "model.safetensors")
        change(state)
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})

    return damage


def drop(prefix: str):
    return weights(lambda state: [state.pop(k) for k in [k for k in state if k.startswith(prefix)]])


def as_int(state: dict) -> None:
    state["classifier.weight"] = state["classifier.weight"].to(torch.int32)


def _export_setup(e: Env) -> None:
    e.write(".out.previous/notes.txt", "a folder of the user's with a name like a swap folder's\n")
    e.write("out/notes.txt", "mine\n")


CASES = [
    Case("finetune-labels-true-and-1#36.probe", "finetune", lambda e: own(e, jsonl([True, 1, False, 0]), jsonl([1, 0]), "jsonl"),
         "mix true/false with numbers"),
    Case("finetune-labels-1-and-1.0#36.probe", "finetune", lambda e: own(e, csv(["1", "0", "1.0"]), csv(["1", "0"])), "is the number of label"),
    Case("predict-classifier-without-head#36.probe", "predict", lambda e: run_predict(e, model=e.tmp / T), "lacks 2 of the model's tensors",
         lambda e: (model_copy(drop("classifier."))(e), e.write("in.txt", "good day\n"))),
    Case("evaluate-encoder-layer-missing#36.probe", "evaluate", lambda e: run_evaluate(e, model=e.tmp / T), "which would start at random",
         model_copy(drop("bert.encoder.layer.1.attention.self.query."))),
    Case("export-classifier-without-head#36.probe", "export", lambda e: run_export(e, model=e.tmp / T), "lacks 2 of the model's tensors",
         model_copy(drop("classifier."))),
    Case("finetune-from-a-model-missing-a-layer#36.probe", "finetune", lambda e: run_finetune(e, model=e.tmp / T), "bert.encoder.layer.1",
         model_copy(drop("bert.encoder.layer.1.output.dense."))),
    Case("export-int32-weights#36.probe", "export", lambda e: run_export(e, model=e.tmp / T), "as I32, not floating point", model_copy(weights(as_int))),
    Case("finetune-negative-lr-in-scientific-notation#36.probe", "finetune", lambda e: run_finetune(e, "--lr", "-1e-3"), "--lr must be above 0"),
    Case("finetune-max-seq-len-1#36.probe", "finetune", lambda e: run_finetune(e, "--max-seq-len", "1"), "--max-seq-len at least 2"),
    Case("export-next-to-a-users-previous-folder#36.probe", "export", lambda e: run_export(e), "not a `bort export` folder", _export_setup),
    Case("export-out-dot-dot-is-the-working-folder#36.probe", "export", lambda e: run_export(e, out="sub/.."), "not a `bort export` folder",
         lambda e: e.write("sub/x.txt", "mine\n")),
    Case("agora-infill-without-mlm-head#36.probe", "agora", lambda e: run_agora(e), "has no masked-LM head for --transform mlm-infill"),
    Case("predict-task-with-other-labels#36.probe", "predict", lambda e: run_predict(e, "--task", "glue/mnli"),
         "predicts the labels (negative, positive) but glue/mnli needs", lambda e: e.write("in.txt", "good day\n")),
    Case("evaluate-predictions-an-existing-file-without-suffix#36.probe", "evaluate", lambda e: run_evaluate(e, "--predictions", e.tmp / "notes"),
         "exists and bort did not write it", lambda e: e.write("notes", "mine\n")),
    Case("export-beside-a-users-swap-named-folder#36.probe", "export", lambda e: run_export(e), "is in the way",
         lambda e: e.write(".out.bort-previous/b.txt", "BACKUP\n")),
    Case("bench-beside-a-users-swap-named-folder#36.probe", "bench", lambda e: run_bench(e), "is in the way",
         lambda e: (e.write("out/u.txt", "x\n"), e.write(".out.bort-previous/b.txt", "BACKUP\n"))),
    Case("finetune-labels-true-as-text-and-boolean#36.probe", "finetune",
         lambda e: own(e, jsonl([True, "true", False]), jsonl([True, False]), "jsonl"), "only in case"),
    Case("finetune-labels-differing-in-case#36.probe", "finetune", lambda e: own(e, csv(["positive", "negative", "Positive"]), csv(["positive"])),
         "only in case"),
    Case("finetune-labels-nfc-and-nfd#36.probe", "finetune", lambda e: own(e, csv(["caf\u00e9", "plain", "cafe\u0301"]), csv(["plain"])),
         "how its characters are encoded"),
    Case("predict-nan-weights#36.probe", "predict", lambda e: run_predict(e, model=e.tmp / T), "holds NaN or infinite values",
         lambda e: (model_copy(weights(lambda st: st["classifier.weight"].fill_(float("nan"))))(e), e.write("in.txt", "good day\n"))),
    Case("finetune-jsonl-lone-surrogate#36.probe", "finetune",
         lambda e: own(e, '{"text": "bad \\udc80 x", "label": 1}\n' + jsonl([1, 0]), jsonl([1, 0]), "jsonl"), "a lone surrogate escape (\\udc80)"),
    Case("predict-config-max-seq-len-a-string#36.probe", "predict", lambda e: run_predict(e, model=e.tmp / T), "'bort_max_seq_len' must be an integer",
         lambda e: (model_copy(lambda f: (f / "config.json").write_text((f / "config.json").read_text().replace(
             '"bort_max_seq_len": 32', '"bort_max_seq_len": "32"')), src="export")(e), e.write("in.txt", "good day\n"))),
    Case("predict-config-nan-setting#36.probe", "predict", lambda e: run_predict(e, model=e.tmp / T), "'layer_norm_eps' is nan, not a finite number",
         lambda e: (model_copy(lambda f: (f / "config.json").write_text(json.dumps({**json.loads((f / "config.json").read_text()),
                                                                                    "layer_norm_eps": float("nan")})))(e), e.write("in.txt", "good day\n"))),
    Case("predict-yaml-nested-5000-deep#36.probe", "predict", lambda e: ["predict", "--config", e.tmp / "deep.yaml"], "nest too deeply",
         lambda e: e.write("deep.yaml", "model: " + "[" * 5000 + "]" * 5000 + "\n")),
    Case("finetune-zero-width-texts#36.probe", "finetune", lambda e: own(e, "text,label\n" + "\u200b\u200b\u200b,1\n" * ROWS, csv(["1", "0"])),
         "empty text in column 'text'"),
]


@pytest.mark.parametrize("case", [param(c) for c in CASES])
def test_probe_case_is_refused_in_one_line(case: Case, env: Env, capsys, monkeypatch, bort_cmd):  # noqa: F811 (the fixture)
    check_refused(case, env, capsys, monkeypatch, bort_cmd)


def test_an_input_named_like_a_swap_folder_survives_an_export_beside_it(env: Env):  # noqa: F811
    """An export whose input model sits where bort's swap folder for --out would be: the model is read, never moved or removed."""
    model = Path(env.copy(env.classifier, ".out.previous"))
    before = sorted(p.name for p in model.iterdir())
    (env.tmp / "out").mkdir()
    assert main([str(a) for a in run_export(env, model=model)]) == 0
    assert sorted(p.name for p in model.iterdir()) == before and (env.tmp / "out" / "model.onnx").is_file()


def test_out_dot_is_the_working_folder(env: Env, capsys, monkeypatch):  # noqa: F811
    monkeypatch.chdir(env.tmp)
    env.write("notes.txt", "mine\n")
    assert main([str(a) for a in run_export(env, out=".")]) == 2
    assert capsys.readouterr().err.strip() == (f"bort: error: --out '{env.tmp}' is not empty and has no export.json, so it is not a "
                                                "`bort export` folder; give a new or empty folder")
    assert sorted(p.name for p in env.tmp.iterdir()) == ["notes.txt"]


def test_a_new_head_may_be_missing_but_not_the_encoder(env: Env):  # noqa: F811
    """Fine-tuning an encoder starts its head at random (the point); a missing encoder tensor is refused all the same."""
    from transformers import AutoModelForSequenceClassification

    model = from_folder(AutoModelForSequenceClassification, env.teacher, new_head=True)  # a masked-LM folder: no classifier
    assert model.classifier.weight.shape[0] == 2
    with pytest.raises(BortError, match=r"lacks 4 of the model's tensors .*\(e.g. 'bert.pooler.dense.bias'\)"):  # pooler and classifier
        from_folder(AutoModelForSequenceClassification, env.teacher)


def test_a_killed_runs_folder_is_not_a_model(env: Env, capsys):  # noqa: F811
    """A finetune folder killed mid-run holds its best model so far and no finetune.json: predict and evaluate refuse it."""
    run = Path(env.copy(env.classifier, "run"))
    (run / "finetune_settings.json").write_text("{}", encoding="utf-8")
    (run / "checkpoint").mkdir()
    env.write("in.txt", "good day\n")
    for argv in (run_predict(env, model=run), run_evaluate(env, model=run)):
        assert main([str(a) for a in argv]) == 2
        assert "holds an unfinished `bort finetune` run (it has no finetune.json yet)" in capsys.readouterr().err
    (run / "finetune.json").write_text("{}", encoding="utf-8")
    assert main([str(a) for a in run_predict(env, model=run)]) == 0


def test_extract_refuses_a_space_with_nothing_smaller_before_any_work(env: Env, capsys):  # noqa: F811
    """A space whose every shape is larger than the teacher is refused in one line before timing (S needs smaller)."""
    env.write("wide.yaml", "D: [2]\nA: [4]\nH: [128]\nI: [256]\n")
    assert main(env.extract_args(env.teacher, env.tmp / "run", "--space", str(env.tmp / "wide.yaml"), "--device", "cpu")) == 2
    assert capsys.readouterr().err.strip() == ("bort: error: no architecture of the space is smaller than the teacher ⟨2,4,64,128⟩; "
                                               "widen the space towards fewer or narrower layers")


def test_extract_refused_after_timing_takes_the_corrected_space(env: Env, capsys):  # noqa: F811
    """No candidate faster than the teacher is found only once the space is timed: the corrected rerun (another space) goes on
    in the same folder (the refused run trained nothing to mix)."""
    env.write("deep.yaml", "D: [9]\nA: [2]\nH: [16]\nI: [32]\n")  # smaller than T for any vocabulary, 9 layers slower
    out = env.tmp / "run"
    assert main(env.extract_args(env.teacher, out, "--space", str(env.tmp / "deep.yaml"), "--device", "cpu")) == 2  # timed: latencies stored
    assert "no candidate is both smaller and faster" in capsys.readouterr().err
    assert main(env.extract_args(env.teacher, out, "--device", "cpu")) == 0
    assert (out / "result.json").is_file()


def test_a_store_without_trainings_takes_new_settings_and_keeps_latencies_of_the_same_teacher(tmp_path):
    """An extract refused after timing (no training stored) takes the corrected settings; its latencies stay for the same
    teacher and go for another one (they are keyed by the timing settings, not by the teacher)."""
    from bort.extract.store import RunStore

    teacher, other = tmp_path / "t", tmp_path / "o"
    for folder, text in ((teacher, "a"), (other, "b")):
        folder.mkdir()
        (folder / "config.json").write_text(text)
    store = RunStore(tmp_path / "run")
    store.check_settings({"teacher": str(teacher), "init": "random"})
    store.put_latency("1,2,32,64", "k", "cpu", 1.5)
    store.check_settings({"teacher": str(teacher), "init": "teacher"})  # no training yet: the new settings are taken
    assert store.latency("1,2,32,64", "k") == 1.5
    store.check_settings({"teacher": str(other), "init": "teacher"})
    assert store.latency("1,2,32,64", "k") is None
    store.put_trial("1,2,32,64", "theta", 0.5, 1.0)
    with pytest.raises(BortError, match="other settings"):
        store.check_settings({"teacher": str(other), "init": "random"})
