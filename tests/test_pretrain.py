"""`bort pretrain`: the output folder, resume after a kill, --init teacher, divergence, and 2-process DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import SEQ_LEN
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM

import bort.training.run as run_mod
from bort.arch import Arch
from bort.cli import main
from bort.errors import BortError
from bort.models.families import config_arch
from bort.models.slices import init_from_teacher
from bort.models.student import build_student
from bort.models.teacher import load_teacher


@pytest.fixture(scope="module")
def still_teacher(tmp_path_factory, bert_teacher):
    """The tiny teacher with dropout off, so runs are comparable weight for weight across process counts."""
    folder = tmp_path_factory.mktemp("still") / "teacher"
    shutil.copytree(bert_teacher, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def _args(teacher, out, corpus, *extra):
    return ["pretrain", "--teacher", str(teacher), "--out", str(out), "--corpus", str(corpus), "--arch", "1,2,32,64",
            "--seq-len", str(SEQ_LEN), "--steps", "6", "--batch-size", "4", "--save-every", "2", "--eval-every", "3",
            "--eval-sequences", "8", "--bf16", "off", "--device", "cpu", "--no-progress", *extra]


def _weights(folder):
    return load_file(str(folder / "model" / "model.safetensors"))


def test_output_is_a_loadable_mlm_folder(tmp_path, bert_teacher, corpus_file):
    out = tmp_path / "pt"
    assert main(_args(bert_teacher, out, corpus_file)) == 0
    model = AutoModelForMaskedLM.from_pretrained(out / "model")
    assert config_arch(model.config) == Arch(1, 2, 32, 64) and model.config.model_type == "bert"
    report = json.loads((out / "pretrain.json").read_text())
    assert report["steps"] == 6 and report["tokens_seen"] == 6 * 4 * SEQ_LEN and report["wall_s"] > 0
    assert 0.0 <= report["mlm_accuracy"] <= 1.0 and report["kd_ce"] > 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [3, 6]
    assert metrics[-1]["kd_ce"] == pytest.approx(report["kd_ce"])
    assert not (out / "checkpoint").exists()  # a finished run keeps the model, not its optimiser
    # The model alone in OUT/model (what AutoModel*, push and upload take); the run's own files beside it.
    assert sorted(p.name for p in (out / "model").iterdir()) == ["README.md", "config.json", "model.safetensors", "tokenizer.json",
                                                                "tokenizer_config.json"]
    assert {"pretrain.json", "metrics.jsonl", "pretrain_settings.json"} <= {p.name for p in out.iterdir()}
    # Run again: finished, so returned as it is, nothing trained or written.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(_args(bert_teacher, out, corpus_file)) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_killed_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, still_teacher, corpus_file):
    """A run stopped right after its step-4 checkpoint and resumed ends with the uninterrupted run's weights."""
    ref = tmp_path / "ref"
    assert main(_args(still_teacher, ref, corpus_file)) == 0

    real_save = run_mod.save_checkpoint

    def save_then_die(folder, model, optimizer, scheduler, state, extra=None):
        real_save(folder, model, optimizer, scheduler, state, extra)
        if state.step == 4:
            raise KeyboardInterrupt  # the process dies right after the checkpoint

    monkeypatch.setattr(run_mod, "save_checkpoint", save_then_die)
    out = tmp_path / "resumed"
    assert main(_args(still_teacher, out, corpus_file)) == 130
    assert not (out / "model" / "model.safetensors").exists()
    monkeypatch.setattr(run_mod, "save_checkpoint", real_save)
    assert main(_args(still_teacher, out, corpus_file)) == 0

    a, b = _weights(ref), _weights(out)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6]  # no duplicated or lost evaluation across the resume


def test_resume_with_other_settings_is_refused(tmp_path, bert_teacher, corpus_file, capsys):
    out = tmp_path / "pt"
    assert main(_args(bert_teacher, out, corpus_file)) == 0
    assert main(_args(bert_teacher, out, corpus_file, "--lr", "1e-3")) == 2
    assert "other settings" in capsys.readouterr().err


def test_init_teacher_copies_mapped_slices(bert_teacher):
    teacher = load_teacher(bert_teacher)
    student = build_student(teacher.config, Arch(1, 2, 32, 64), seed=0)
    mapping = init_from_teacher(student, teacher.model)
    t, s = teacher.model.state_dict(), student.state_dict()
    # one student layer takes the teacher's last layer (⌊1·2/1⌋ − 1 = 1)
    assert mapping["bert.encoder.layer.0.attention.self.query.weight"] == "bert.encoder.layer.1.attention.self.query.weight"
    torch.testing.assert_close(s["bert.encoder.layer.0.attention.self.query.weight"], t["bert.encoder.layer.1.attention.self.query.weight"][:32, :32])
    torch.testing.assert_close(s["bert.encoder.layer.0.intermediate.dense.weight"], t["bert.encoder.layer.1.intermediate.dense.weight"][:64, :32])
    torch.testing.assert_close(s["bert.embeddings.word_embeddings.weight"], t["bert.embeddings.word_embeddings.weight"][:, :32])
    assert len(mapping) == len(s)


def test_init_teacher_refuses_a_wider_or_deeper_student(bert_teacher):
    teacher = load_teacher(bert_teacher)
    with pytest.raises(BortError, match="does not fit"):
        init_from_teacher(build_student(teacher.config, Arch(1, 2, 128, 64)), teacher.model)
    with pytest.raises(BortError, match="no deeper"):
        init_from_teacher(build_student(teacher.config, Arch(3, 2, 32, 64)), teacher.model)


def _teacher_slices(teacher_folder, student_state: dict) -> dict:
    """What ``--init teacher`` must give a ⟨1,2,32,64⟩ student of a 2-layer teacher, worked out here from the
    teacher's own weights: student layer 0 is teacher layer 1 (⌊1·2/1⌋ − 1), every tensor its leading slice."""
    teacher = AutoModelForMaskedLM.from_pretrained(teacher_folder).state_dict()
    expected = {}
    for name, tensor in student_state.items():
        source = name.replace(".layer.0.", ".layer.1.")
        expected[name] = teacher[source][tuple(slice(0, n) for n in tensor.shape)]
    return expected


def _matrix_gap(state: dict, expected: dict) -> float:
    """Mean |Δ| over the student's matrices (LayerNorm weights are 1 and biases 0 under any initialisation)."""
    gaps = [(state[k].float() - expected[k].float()).abs().mean().item() for k in state if state[k].ndim == 2]
    return sum(gaps) / len(gaps)


def test_init_teacher_and_mlm_loss_run(tmp_path, bert_teacher, corpus_file):
    out = tmp_path / "pt"
    assert main(_args(bert_teacher, out, corpus_file, "--init", "teacher", "--loss", "mlm")) == 0
    report = json.loads((out / "pretrain.json").read_text())
    assert report["init"] == "teacher" and report["loss"]["alpha_kd"] == 0.0 and report["loss"]["alpha_mlm"] == 1.0
    # 6 AdamW steps of lr ≤ 5e-4 move a weight by a few 1e-3 at most: the student is still near the teacher's slices,
    # where a random start (std 0.02 against the teacher's 0.02) is about 0.022 away on average.
    state = AutoModelForMaskedLM.from_pretrained(out / "model").state_dict()
    assert _matrix_gap(state, _teacher_slices(bert_teacher, state)) < 0.005


def test_init_teacher_reaches_the_student(tmp_path, bert_teacher, corpus_file):
    """``--init teacher`` end to end: with a learning rate of 1e-30 the one step changes nothing a float32 can hold,
    so the saved student is its step-0 self, which must be the teacher's slices, tensor for tensor."""
    out = tmp_path / "pt"
    assert main(_args(bert_teacher, out, corpus_file, "--init", "teacher", "--lr", "1e-30", "--steps", "1", "--save-every", "1",
                      "--eval-every", "1")) == 0
    state = AutoModelForMaskedLM.from_pretrained(out / "model").state_dict()
    expected = _teacher_slices(bert_teacher, state)
    assert config_arch(AutoModelForMaskedLM.from_pretrained(out / "model").config) == Arch(1, 2, 32, 64)
    for name, tensor in state.items():
        torch.testing.assert_close(tensor, expected[name], msg=lambda m, name=name: f"{name}: {m}")
    # and a random start is not that (the comparison can tell the two apart)
    rand = tmp_path / "rand"
    assert main(_args(bert_teacher, rand, corpus_file, "--lr", "1e-30", "--steps", "1", "--save-every", "1", "--eval-every", "1")) == 0
    assert _matrix_gap(AutoModelForMaskedLM.from_pretrained(rand / "model").state_dict(), expected) > 0.01


@pytest.fixture(scope="module")
def other_teacher(tmp_path_factory, bert_teacher):
    """The tiny teacher's tokenizer and shape with other weights (seed 1): another teacher for the same student."""
    folder = tmp_path_factory.mktemp("other") / "teacher"
    shutil.copytree(bert_teacher, folder)
    config = AutoModelForMaskedLM.from_pretrained(bert_teacher).config
    torch.manual_seed(1)
    AutoModelForMaskedLM.from_config(config).save_pretrained(folder)
    return folder


def test_mlm_loss_does_not_use_the_teacher(tmp_path, bert_teacher, other_teacher, corpus_file):
    """``--loss mlm`` trains on the gold tokens alone: two different teachers give the same student, weight for weight,
    where the default distillation loss gives two different students."""
    runs = {}
    for loss in ("mlm", "kd"):
        for name, teacher in (("a", bert_teacher), ("b", other_teacher)):
            out = tmp_path / f"{loss}-{name}"
            assert main(_args(teacher, out, corpus_file, "--loss", loss, "--steps", "3")) == 0
            runs[loss, name] = _weights(out)
    assert runs["mlm", "a"].keys() == runs["mlm", "b"].keys()
    for key in runs["mlm", "a"]:
        torch.testing.assert_close(runs["mlm", "b"][key], runs["mlm", "a"][key], rtol=0, atol=0)
    assert any(not torch.equal(runs["kd", "a"][k], runs["kd", "b"][k]) for k in runs["kd", "a"])
    assert any(not torch.equal(runs["kd", "a"][k], runs["mlm", "a"][k]) for k in runs["kd", "a"])


def test_diverging_loss_stops_with_one_line(tmp_path, bert_teacher, corpus_file, bort_cmd):
    out = tmp_path / "pt"
    proc = subprocess.run([*bort_cmd, *_args(bert_teacher, out, corpus_file, "--lr", "1e6", "--grad-clip", "0", "--warmup", "0")],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bort: error:") and ("diverged" in lines[0] or "became" in lines[0])
    assert not (out / "model" / "model.safetensors").exists()


def test_two_processes_match_one(tmp_path, still_teacher, corpus_file):
    """torchrun with 2 gloo processes and the same global batch ends where 1 process does."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(_args(still_teacher, one, corpus_file)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", "29517",
           "-m", "bort", *_args(still_teacher, two, corpus_file)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((two / "pretrain.json").read_text())["world_size"] == 2
    a, b = _weights(one), _weights(two)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5)
