"""``bort teacher prepare``: an MLM head for a teacher without one, trained with the encoder frozen."""

from __future__ import annotations

import json

from bort.cli import main
from bort.models.loading import has_mlm_head
from bort.models.teacher import load_teacher


def prepare_args(teacher, out, corpus, *extra):
    return ["teacher", "prepare", "--teacher", str(teacher), "--out", str(out), "--corpus", str(corpus), "--seq-len", "32",
            "--steps", "8", "--batch-size", "4", *extra]


def test_prepare_writes_a_complete_mlm_teacher(tmp_path, capsys, bert_teacher_nohead, corpus_file):
    out = tmp_path / "prepared"
    assert main(prepare_args(bert_teacher_nohead, out, corpus_file)) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    report = json.loads((out / "bort_teacher.json").read_text(encoding="utf-8"))
    assert printed == {k: report[k] for k in ("mlm_accuracy_before", "mlm_accuracy", "heldout_sequences")}
    assert report["config"]["steps"] == 8 and report["heldout_sequences"] > 0
    assert has_mlm_head(out) and not has_mlm_head(bert_teacher_nohead)
    teacher = load_teacher(out)
    assert teacher.has_mlm_head and teacher.arch.astuple() == (2, 4, 64, 128)


def test_prepare_refuses_a_teacher_with_a_head(tmp_path, capsys, bert_teacher, corpus_file):
    assert main(prepare_args(bert_teacher, tmp_path / "out", corpus_file)) == 2
    err = capsys.readouterr().err
    assert err.startswith("bort: error: ") and "already has an MLM head" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_prepare_rejects_a_sequence_longer_than_the_positions(tmp_path, capsys, bert_teacher_nohead, corpus_file):
    assert main(prepare_args(bert_teacher_nohead, tmp_path / "out", corpus_file, "--seq-len", "100")) == 2
    assert "--seq-len 100" in capsys.readouterr().err
