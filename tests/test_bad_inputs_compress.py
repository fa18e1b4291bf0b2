"""Issue 36 (items 9 and 14): ``bort compress`` refuses, before its first stage, what a later stage would refuse.

The table-driven contract of ``test_bad_inputs.py`` (:func:`bad_inputs.check_refused`: exit 2, one
``bort: error:`` line naming compress's own flag, nothing left behind) for the settings that compress used to
check only after its extraction and pretraining had run: a bad ``--task-teacher``, ``--student-lr 0``, a
``--max-seq-len`` past the teacher's positions, a wrong ``--embedding-data``; and the nested stages' errors,
which name compress's flags (``--task-temperature``, ``--bench-threads``). Then two that are rightly accepted:
``glue/rte`` with ``superglue/rte``, and a corrected rerun of a refused setting.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from bad_inputs import (  # noqa: F401
    Case,
    Env,
    check_refused,
    classifier,
    env,
    export,
    model_copy,
    param,
    run_compress,
    sst2,
)
from test_reliability import tree

from bort.cli import main
from bort.compress.config import CompressConfig


def other_tokens(folder: Path) -> None:
    """The same vocabulary in another order: the teacher's ids mean other words than the student's."""
    doc = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = doc["model"]["vocab"]
    words = sorted(vocab, key=vocab.get)
    doc["model"]["vocab"] = {w: i for i, w in enumerate(words[:5] + words[5:][::-1])}  # the special tokens stay
    (folder / "tokenizer.json").write_text(json.dumps(doc), encoding="utf-8")


def _sst2(e: Env, *extra, **kw) -> list:
    return run_compress(e, "--data", e.data, *extra, **kw)


CASES = [
    Case("compress-task-teacher-missing#36.9", "compress", lambda e: _sst2(e, "--task-teacher", e.tmp / "nowhere"), "does not exist"),
    Case("compress-task-teacher-a-file#36.9", "compress", lambda e: _sst2(e, "--task-teacher", e.corpus), ("is a file", "model")),
    Case("compress-task-teacher-bare-encoder#36.9", "compress", lambda e: _sst2(e, "--task-teacher", e.teacher),
         ("--task-teacher", "has no task head")),
    Case("compress-task-teacher-an-onnx-folder#36.9", "compress", lambda e: _sst2(e, "--task-teacher", e.export), "--task-teacher"),
    Case("compress-task-teacher-of-another-task#36.9", "compress",
         lambda e: run_compress(e, "--task-teacher", e.classifier, task=("--task", "glue/stsb")), ("--task-teacher", "regression")),
    Case("compress-student-lr-0#36.9", "compress", lambda e: _sst2(e, "--student-lr", "0"), "--student-lr"),
    Case("compress-max-seq-len-above-the-teachers-positions#36.9", "compress", lambda e: _sst2(e, "--max-seq-len", "65"),
         ("--max-seq-len 65", "64 positions")),
    Case("compress-bench-seq-above-the-teachers-positions#36.9", "compress", lambda e: _sst2(e, "--bench-seq", "65"), "--bench-seq 65"),
    Case("compress-embedding-data-without-its-files#36.9", "compress",
         lambda e: run_compress(e, "--embedding-task", "glue/stsb", "--embedding-data", e.data, task=()), "dev.tsv"),
    Case("compress-data-without-its-dev-file#36.9", "compress", lambda e: run_compress(e, "--data", e.tmp / "data"), "dev.tsv",
         setup=lambda e: (e.tmp / "data").mkdir() or (e.tmp / "data" / "train.tsv").write_text(e.data.joinpath("train.tsv").read_text())),
    Case("compress-task-temperature-0#36.14", "compress", lambda e: _sst2(e, "--task-temperature", "0"), "--task-temperature"),
    Case("compress-bench-threads-0#36.14", "compress", lambda e: _sst2(e, "--bench-threads", "0"), "--bench-threads"),
    # each stage's options are checked as its config is built, before the first stage, named as compress spells them (issue 37)
    Case("compress-pretrain-batch-size-0#37", "compress", lambda e: _sst2(e, "--pretrain-batch-size", "0"), "--pretrain-batch-size"),
    Case("compress-pretrain-lr-0#37", "compress", lambda e: _sst2(e, "--pretrain-lr", "0"), "--pretrain-lr"),
    Case("compress-epsilon-0#37", "compress", lambda e: _sst2(e, "--epsilon", "0"), "--epsilon must be at least 1"),
    Case("compress-bench-rounds-0#37", "compress", lambda e: _sst2(e, "--bench-rounds", "0"), "--bench-rounds"),
    Case("compress-the-same-task-twice#36.14", "compress", lambda e: run_compress(e, task=("--task", "glue/rte", "glue/rte/")), "twice"),
    # --augment-inputs (issue 38): its columns read before the first stage; one task's inputs
    Case("compress-augment-inputs-of-pairs-for-single-texts#38", "compress",
         lambda e: _sst2(e, "--augment-inputs", e.write("pool.csv", "text_a,text_b\nthe cat,the dog\n"), "--augment-columns", "text_a,text_b"),
         ("--augment-inputs", "1 text(s)", "--augment-columns")),
    Case("compress-augment-inputs-without-its-column#38", "compress", lambda e: _sst2(e, "--augment-inputs", e.write("pool.csv", "words\nthe cat\n")),
         ("pool.csv:2", "no column 'text'")),
    Case("compress-augment-inputs-with-two-tasks#38", "compress",
         lambda e: run_compress(e, "--augment-inputs", e.write("pool.csv", "text\nthe cat\n"), task=("--task", "glue/sst2", "glue/cola")),
         ("--augment-inputs", "one task")),
    Case("compress-pair-retrieve-on-single-texts#38", "compress", lambda e: _sst2(e, "--transform", "pair-retrieve"),
         ("--transform pair-retrieve", "1 text(s)")),
    Case("compress-augment-inputs-for-multiple-choice#38", "compress",
         lambda e: run_compress(e, "--augment-inputs", e.write("pool.csv", "text\nthe cat\n"), task=("--task", "superglue/copa")),
         ("--augment-inputs", "superglue/copa is multiple choice")),
    Case("compress-task-teacher-of-another-tokenizer#36.9", "compress", lambda e: _sst2(e, "--task-teacher", e.tmp / "model"),
         ("--task-teacher", "tokenizer"), setup=model_copy(other_tokens)),
]


@pytest.mark.parametrize("case", [param(c) for c in CASES])
def test_refused_before_the_first_stage(case: Case, env: Env, capsys, monkeypatch, bort_cmd):  # noqa: F811 (the fixture)
    check_refused(case, env, capsys, monkeypatch, bort_cmd)


def test_two_tasks_of_one_name_in_two_benchmarks_are_two_tasks():
    cfg = CompressConfig(tasks=("glue/rte", "superglue/rte", "glue/sst2"))
    assert [name for name, *_ in cfg.jobs()] == ["glue-rte", "superglue-rte", "sst2"]  # their own folders under RUN/finetune, RUN/export


def _drop(out: Path, *names: str) -> None:
    """Mark stages of a finished run as a kill during the first of them leaves them: the first running, the others not begun."""
    doc = json.loads((out / "compress.json").read_text())
    doc["stages"] = [{**s, "status": "running"} if s["name"] == names[0] else s for s in doc["stages"] if s["name"] not in names[1:]]
    (out / "compress.json").write_text(json.dumps(doc))


def test_compress_resumes_by_what_each_finished_stage_used_and_read(env: Env, capsys, monkeypatch):  # noqa: F811 (the fixture)
    data = Path(shutil.copytree(env.data, env.tmp / "data"))
    argv = [str(a) for a in run_compress(env, "--data", data)]
    out = env.tmp / "out"
    assert main(argv) == 0

    # 36.6: killed in the student's fine-tuning, then the dev labels flipped: refused in one line, nothing run.
    _drop(out, "finetune/sst2/student", "export/sst2", "score/sst2", "bench", "bench_real/sst2")
    dev = (data / "dev.tsv").read_text()
    (data / "dev.tsv").write_text(dev.replace("\t1\n", "\t2\n").replace("\t0\n", "\t1\n").replace("\t2\n", "\t0\n"))
    before = tree(out)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"'{data}/dev.tsv' changed since this run started (content differs)" in err
    assert tree(out) == before
    (data / "dev.tsv").write_text(dev)

    # A setting that only unfinished stages use is taken (--bench-rounds); one a finished stage used is refused, named as compress's.
    assert main([*argv, "--bench-rounds", "2"]) == 0
    capsys.readouterr()
    assert main([*argv, "--bench-rounds", "2", "--student-lr", "1e-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "student_lr: 0.0003 there, 0.001 now" in err and "finished stage finetune/sst2/student" in err

    # 36.10: the export deleted: redone, and the report points at an export that is there. The graph made again is the same file,
    # so the scores that read it stand (a changed graph redoes them: the digests of what a stage read); its card, re-written
    # with the int8 score and the speed-ups, is no input.
    shutil.rmtree(out / "export")
    assert main([*argv, "--bench-rounds", "2"]) == 0
    doc = json.loads((out / "compress.json").read_text())
    assert (Path(doc["tasks"]["sst2"]["student_onnx"]) / "model.onnx").is_file()
    err = capsys.readouterr().err
    assert "export/sst2: its output" in err and "score/sst2: done earlier" in err and "skipped" in err
    assert "model-index" in (Path(doc["tasks"]["sst2"]["student_onnx"]) / "README.md").read_text()

    # 36.14: a copy of the finished run folder, given relatively and with --device auto on this machine, resumes: nothing to redo.
    shutil.copytree(out, env.tmp / "copy")
    again = [("copy" if a == str(out) else a) for a in argv]
    again[again.index("--device") + 1] = "cuda" if torch.cuda.is_available() else "auto"
    monkeypatch.chdir(env.tmp)
    capsys.readouterr()
    assert main([*again, "--bench-rounds", "2"]) == 0
    err = capsys.readouterr().err
    assert ": done in" not in err and err.count("skipped") == 8
