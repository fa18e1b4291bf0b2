"""Issue 36 (items 6, 10, 14): a resumed run fingerprints what it reads and its settings in one spelling.

:func:`bort.training.run.fingerprint` spells every setting one way (absolute resolved paths, the device ``auto``
resolves to), :func:`~bort.training.run.stamp` adds the digests of the files and folders they name, and
:func:`~bort.training.run.check_same_settings` refuses a resume whose inputs changed, in one line that says which
file. ``bort compress`` checks each finished stage this way (:class:`bort.compress.resume.Stages`): a changed input
or setting a finished stage used is refused before any work, one no finished stage used is taken, and a finished
stage whose output is gone is redone with every later stage that read it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import test_hostile_inputs as hostile
import torch

from bort.cli import main
from bort.compress.resume import Stages
from bort.compress.stages import Ledger
from bort.errors import BortError
from bort.training.run import check_same_settings, fingerprint, stamp

classifier = hostile.classifier  # a module fixture: a glue/sst2 classifier

# ------------------------------------------------------------------ the fingerprint


def test_another_spelling_of_the_same_settings_is_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = hostile.write_sst2(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    a = fingerprint({"out": Path("run"), "data": "data", "device": "auto", "progress": True})
    b = fingerprint({"out": tmp_path / "x" / ".." / "run", "data": str(data), "device": "cpu", "progress": False})
    assert a == b == {"out": str(tmp_path / "run"), "data": str(data), "device": "cpu"}
    check_same_settings(tmp_path / "run", stamp(a, tmp_path / "run"), stamp(b, tmp_path / "run"))
    assert fingerprint({"task": "glue/sst2", "teacher": "minilm-l6", "x": ""}) == {"task": "glue/sst2", "teacher": "minilm-l6", "x": ""}


def test_an_earlier_borts_record_resumes_from_the_same_working_folder(tmp_path, monkeypatch):
    """A settings file written before the fingerprint (relative paths, ``auto``, no digests) still resumes; a changed seed does not."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    hostile.write_sst2(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    old = {"out": str(tmp_path / "run"), "data": "data", "device": "auto", "seed": 0}
    now = stamp(fingerprint({**old, "device": "cpu"}), tmp_path / "run")
    check_same_settings(tmp_path / "run", old, now)
    with pytest.raises(BortError, match=r"other settings \(seed: 1 there, 0 now\)"):
        check_same_settings(tmp_path / "run", {**old, "seed": 1}, now)


def test_changed_data_is_refused_in_one_line_that_names_the_file(tmp_path):
    data, out = hostile.write_sst2(tmp_path / "data"), tmp_path / "run"
    settings = fingerprint({"out": out, "data": data, "file": data / "train.tsv"})
    old = stamp(settings, out)
    os.utime(data / "dev.tsv", ns=(1, 1))  # a touch alone changes nothing read
    check_same_settings(out, old, stamp(settings, out))
    dev = (data / "dev.tsv").read_text()
    (data / "dev.tsv").write_text(dev.replace("\t0\n", "\tX\n").replace("\t1\n", "\t0\n").replace("\tX\n", "\t1\n"))  # labels flipped
    with pytest.raises(BortError, match=rf"^'{data}/dev.tsv' changed since this run started \(content differs\); put it back"):
        check_same_settings(out, old, stamp(settings, out))
    (data / "dev.tsv").write_text(dev)
    (data / "train.tsv").unlink()
    with pytest.raises(BortError, match=r"train.tsv' changed since this run started \(is gone\)"):
        check_same_settings(out, old, stamp(settings, out))


def test_a_copied_run_folder_compares_its_own_paths_by_their_place_in_it(tmp_path):
    teacher = hostile.write_sst2(tmp_path / "teacher")  # any folder outside the runs
    a, b = tmp_path / "a" / "run", tmp_path / "b" / "run"
    (a / "stage").mkdir(parents=True)
    (a / "stage" / "w.bin").write_bytes(b"weights")
    old = stamp(fingerprint({"out": a, "model": a / "stage", "teacher": teacher}), a / "next")
    shutil.copytree(a, b)
    check_same_settings(b, old, stamp(fingerprint({"out": b, "model": b / "stage", "teacher": teacher}), b / "next"))
    (b / "stage" / "w.bin").write_bytes(b"other weights")
    with pytest.raises(BortError, match=r"stage/w.bin' changed since this run started \(content differs\)"):
        check_same_settings(b, old, stamp(fingerprint({"out": b, "model": b / "stage", "teacher": teacher}), b / "next"))
    (b / "stage" / "w.bin").write_bytes(b"weights")
    with pytest.raises(BortError, match=r"holds a run with other settings \(teacher: "):
        check_same_settings(b, old, stamp(fingerprint({"out": b, "model": b / "stage", "teacher": tmp_path}), b / "next"))


# ------------------------------------------------------------------ a real stage: bort finetune


def test_finetune_resume_refuses_changed_dev_labels_and_takes_another_spelling(tmp_path, classifier, monkeypatch, capsys):
    data = hostile.write_sst2(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    argv = [str(a) for a in hostile.finetune_args(classifier, data, tmp_path / "out")]
    assert main(argv) == 0
    report = (tmp_path / "out" / "finetune.json").read_bytes()
    relative = [("out" if a == str(tmp_path / "out") else "data" if a == str(data) else a) for a in argv]
    if "--device" in relative:
        relative[relative.index("--device") + 1] = "auto" if not torch.cuda.is_available() else "cpu"
    capsys.readouterr()
    assert main(relative) == 0  # the same run, spelt relatively (and with --device auto on this CPU-only machine): resumed
    (data / "dev.tsv").write_text((data / "dev.tsv").read_text().replace("\t1\n", "\t2\n").replace("\t0\n", "\t1\n").replace("\t2\n", "\t0\n"))
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"'{data}/dev.tsv' changed since this run started (content differs)" in err
    assert (tmp_path / "out" / "finetune.json").read_bytes() == report


# ------------------------------------------------------------------ bort compress's stages


def _stages(out: Path, settings: dict) -> Stages:
    out.mkdir(exist_ok=True)
    return Stages(Ledger(out, 3), out / "compress_settings.json", fingerprint(settings))




def _run(out: Path, data: Path, *, steps: int = 1, lr: float = 1.0, ran: list | None = None) -> dict:
    """Three stages: ``a`` reads ``data`` with ``steps``; ``b`` reads a's output; ``c`` (with ``lr``) reads b's."""
    stages, ran = _stages(out, {"out": out, "data": data, "steps": steps, "lr": lr}), ran if ran is not None else []

    def stage(name, settings, text):
        def fn():
            ran.append(name)
            (out / name).mkdir(parents=True, exist_ok=True)
            (out / name / "made.txt").write_text(f"{text} #{len(ran)}")  # another file each time it is made
            return {"text": text}
        return stages.run(name, out / name, fn, settings)

    a = stage("a", {"data": data, "steps": steps}, f"a{steps}")
    b = stage("b", {"model": out / "a"}, a["text"] + "b")
    return stage("c", {"model": out / "b", "lr": lr}, b["text"] + f"c{lr}")


def test_compress_stages_resume_by_their_own_settings_and_inputs(tmp_path):
    data, out = hostile.write_sst2(tmp_path / "data"), tmp_path / "run"
    ran = []
    assert _run(out, data, ran=ran) == {"text": "a1bc1.0"} and ran == ["a", "b", "c"]
    ran.clear()
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert _run(copy, data, ran=ran) == {"text": "a1bc1.0"} and ran == []  # a copied run folder: nothing to redo

    # A setting that a finished stage used: refused before any work, naming compress's setting.
    settings_before = (out / "compress_settings.json").read_bytes()
    with pytest.raises(BortError, match=r"holds a run with other settings \(steps: 1 there, 2 now\) that its finished stage a used"):
        _run(out, data, steps=2, ran=ran)
    assert ran == [] and (out / "compress_settings.json").read_bytes() == settings_before

    # Changed data that a finished stage read: refused, naming the file.
    (data / "dev.tsv").write_text("sentence\tlabel\nflipped\t1\n")
    with pytest.raises(BortError, match=rf"'{data}/dev.tsv' changed since this run started \(content differs\), and the finished stage a"):
        _run(out, data, ran=ran)
    assert ran == []


def test_a_setting_no_finished_stage_used_is_taken(tmp_path):
    data, out = hostile.write_sst2(tmp_path / "data"), tmp_path / "run"
    _run(out, data)
    doc = json.loads((out / "compress.json").read_text())
    doc["stages"] = [s for s in doc["stages"] if s["name"] != "c"]  # as a run stopped before stage c finished leaves it
    (out / "compress.json").write_text(json.dumps(doc))
    ran = []
    assert _run(out, data, lr=0.5, ran=ran) == {"text": "a1bc0.5"} and ran == ["c"]  # the corrected --lr, used by c alone


def test_a_finished_stage_whose_output_is_gone_is_redone_with_what_read_it(tmp_path, capsys):
    data, out = hostile.write_sst2(tmp_path / "data"), tmp_path / "run"
    _run(out, data)
    shutil.rmtree(out / "b")
    ran = []
    assert _run(out, data, ran=ran) == {"text": "a1bc1.0"} and ran == ["b", "c"]
    assert "b: its output" in capsys.readouterr().err and (out / "b" / "made.txt").is_file()


def test_a_setting_added_since_a_run_started_reads_as_the_runs_own_behaviour():
    """Fine-tuning's --alpha-gold came with issue 37; before it, the gold labels weighed 1 − α_kd. A record without it
    resumes where the new setting gives the run's own loss, and only there."""
    from bort.training.run import differing

    old = {"epochs": 3, "distill": {"teacher": "t", "alpha_kd": 1.0, "temperature": 1.0}}
    assert differing(old, {"epochs": 3, "distill": {"teacher": "t", "alpha_kd": 1.0, "alpha_gold": 0.0, "temperature": 1.0}}) == []
    mix = {"epochs": 3, "distill": {"teacher": "t", "alpha_kd": 0.5, "temperature": 1.0}}
    assert differing(mix, {"epochs": 3, "distill": {"teacher": "t", "alpha_kd": 0.5, "alpha_gold": 0.5, "temperature": 1.0}}) == []
    assert differing(mix, {"epochs": 3, "distill": {"teacher": "t", "alpha_kd": 0.5, "alpha_gold": 0.0, "temperature": 1.0}}) == ["distill"]
    assert differing(old, {"epochs": 4, "distill": {"teacher": "t", "alpha_kd": 1.0, "alpha_gold": 0.0, "temperature": 1.0}}) == ["epochs"]
    # --attn-layers came with issue 38; before it, the relations were the last layer's (1).
    rep = {"representation": {"alpha_attn": 1.0, "layer_map": "last"}}
    assert differing(rep, {"representation": {"alpha_attn": 1.0, "layer_map": "last", "attn_layers": 1}}) == []
    assert differing(rep, {"representation": {"alpha_attn": 1.0, "layer_map": "last", "attn_layers": 2}}) == ["representation"]
