"""Issue 36: what bort writes, and where (:mod:`bort.shared`).

Inputs are read-only: no output (a folder, ``evaluate --predictions``) may be, or lie inside, an input of the same command,
nor replace a file bort did not write (#36.1, #36.7). A folder bort rewrites (an export, a benchmark) is replaced whole,
so none of the earlier output's files stay (#36.4), and a run killed on the way is redone (#36.5). A model named twice to
``bench`` is refused (#36.11). The refusals are a table of the shared bad-input machinery (tests/bad_inputs.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
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
    run_compress,
    run_evaluate,
    run_export,
    run_finetune,
    run_pretrain,
    sst2,
)
from test_reliability import hidden, tree

from bort.atomic import LOCK, is_temp
from bort.cli import main
from bort.errors import BortError
from bort.shared import MANIFEST, check_file_out, output_files, write_file_out

INSIDE = "lies inside the input folder"


def _own_model_and_test_file(e: Env) -> None:
    """A copy of the classifier that says it was fine-tuned on one's own files (as `bort finetune --train-file` records it),
    and a test file of that data."""
    folder = e.copy(e.classifier, T)
    config = json.loads((folder / "config.json").read_text())
    config.update(bort_task="own/t", bort_text_columns=["sentence"], bort_label_column="label")
    (folder / "config.json").write_text(json.dumps(config))
    e.write("t.csv", "sentence,label\na fine film,1\na dull film,0\n")


def _earlier_export(e: Env) -> None:
    e.copy(e.export, "out")
    e.write("out/notes.txt", "mine")




CASES = [
    Case("evaluate-predictions-is-the-dev-file#36.1", "evaluate", lambda e: run_evaluate(e, "--predictions", e.data / "dev.tsv"), INSIDE),
    Case("evaluate-predictions-is-the-models-config#36.1", "evaluate", lambda e: run_evaluate(e, "--predictions", e.classifier / "config.json"),
         INSIDE),
    Case("evaluate-predictions-is-the-own-test-file#36.1", "evaluate",
         lambda e: ["evaluate", "--model", e.tmp / T, "--test-file", e.tmp / "t.csv", "--split", "test", "--predictions", e.tmp / "t.csv",
                    "--device", "cpu"], "is the input file", _own_model_and_test_file),
    Case("evaluate-predictions-a-users-file#36.1", "evaluate", lambda e: run_evaluate(e, "--predictions", e.tmp / "p.tsv"),
         "exists and bort did not write it", lambda e: e.write("p.tsv", "my own predictions\n")),
    Case("evaluate-predictions-a-folder#36.1", "evaluate", lambda e: run_evaluate(e, "--predictions", e.tmp / "p.tsv"), "is a folder",
         lambda e: e.write("p.tsv/notes.txt", "mine")),
    Case("export-into-an-earlier-export-with-a-users-file#36.4", "export", lambda e: run_export(e), "holds 'notes.txt'", _earlier_export),
    Case("finetune-out-inside-the-model#36.7", "finetune", lambda e: run_finetune(e, model=e.tmp / T, out=f"{T}/run"), INSIDE, model_copy()),
    Case("agora-out-inside-the-model#36.7", "agora", lambda e: run_agora(e, model=e.tmp / T, out=f"{T}/run"), INSIDE, model_copy()),
    Case("finetune-out-holds-the-data#36.7", "finetune", lambda e: run_finetune(e, data=e.tmp / "d" / "sst2", out="d"), "holds the input folder",
         lambda e: e.copy(e.data, "d/sst2")),
    Case("pretrain-out-inside-the-teacher#36.7", "pretrain", lambda e: run_pretrain(e, teacher=e.tmp / T, out=f"{T}/student"), INSIDE,
         model_copy(src="teacher")),
    Case("compress-out-inside-the-teacher#36.7", "compress", lambda e: run_compress(e, teacher=e.tmp / T, out=f"{T}/run"), INSIDE, model_copy(src="teacher")),
    Case("bench-models-the-same-twice#36.11", "bench", lambda e: run_bench(e, models=[e.export, e.export]), "names the same model twice"),
    Case("bench-models-two-spellings-of-one#36.11", "bench", lambda e: run_bench(e, models=[e.export, f"{e.export}/../{e.export.name}"]),
         "names the same model twice"),
]


@pytest.mark.parametrize("case", [param(c) for c in CASES])
def test_output_refused_in_one_line(case: Case, env: Env, capsys, monkeypatch, bort_cmd):  # noqa: F811 (the fixture)
    check_refused(case, env, capsys, monkeypatch, bort_cmd)


# ------------------------------------------------------------------ one output file


def test_predictions_are_rewritten_by_a_rerun(env: Env):  # noqa: F811
    target = env.tmp / "p.tsv"
    assert main([str(a) for a in run_evaluate(env, "--predictions", target)]) == 0
    first = target.read_text()
    assert first.startswith("index\tprediction\n") and len(first.splitlines()) > 2
    assert main([str(a) for a in run_evaluate(env, "--predictions", target)]) == 0  # bort's own file: replaced
    assert target.read_text() == first and json.loads((env.tmp / MANIFEST).read_text())["loose"] == ["p.tsv"]


def test_write_file_out_checks_again_before_it_writes(tmp_path):
    path = write_file_out(tmp_path / "a.csv", "idx,label\n")
    assert path.read_text() == "idx,label\n"
    write_file_out(path, "idx,label\n0,yes\n")  # its own: replaced
    assert path.read_text() == "idx,label\n0,yes\n"
    (tmp_path / "b.csv").write_text("mine")
    with pytest.raises(BortError, match="bort did not write it"):
        write_file_out(tmp_path / "b.csv", "x")
    assert (tmp_path / "b.csv").read_text() == "mine"
    with pytest.raises(BortError, match="is the input file"):
        check_file_out(tmp_path / "b.csv", inputs=(tmp_path / "b.csv",), flag="--predictions")


# ------------------------------------------------------------------ a folder bort rewrites


def _fill(tmp: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)


def test_output_files_replaces_bort_own_earlier_output_whole(tmp_path):
    out = tmp_path / "x"
    with output_files(out, kind="bort export", marker="export.json") as tmp:
        _fill(tmp, {"export.json": "{}", "model.safetensors": "w", "modules.json": "[]", "1_Pooling/config.json": "{}"})
    assert json.loads((out / MANIFEST).read_text())["files"] == ["1_Pooling/config.json", "export.json", "model.safetensors", "modules.json"]
    with output_files(out, kind="bort export", marker="export.json") as tmp:
        _fill(tmp, {"export.json": "{}", "model.onnx": "g"})
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, "export.json", "model.onnx"])
    assert hidden(tmp_path) == []  # no temporary, no moved-aside folder left beside it


def test_output_files_keeps_the_folder_as_it_was_when_the_run_fails(tmp_path):
    out = tmp_path / "x"
    with output_files(out, kind="bort bench", marker="bench.json") as tmp:
        _fill(tmp, {"bench.json": "{}", "onnx/a/model.onnx": "g"})
    before = tree(tmp_path)
    with pytest.raises(KeyboardInterrupt), output_files(out, kind="bort bench", marker="bench.json") as tmp:
        _fill(tmp, {"bench.json": "new"})
        raise KeyboardInterrupt
    assert tree(tmp_path) == before
    with pytest.raises(KeyboardInterrupt), output_files(tmp_path / "new", kind="bort bench", marker="bench.json"):
        raise KeyboardInterrupt
    assert not (tmp_path / "new").exists()  # made by the failed run: removed


def test_output_files_refuses_a_file_the_user_put_there_during_the_run(tmp_path):
    out = tmp_path / "x"
    with pytest.raises(BortError, match="holds 'notes.txt'"), output_files(out, kind="bort export", marker="export.json") as tmp:
        _fill(tmp, {"export.json": "{}"})
        (out / "notes.txt").write_text("mine")
    assert (out / "notes.txt").read_text() == "mine" and not (out / "export.json").exists()


def test_a_classifier_export_keeps_none_of_an_earlier_encoders_files(env: Env):  # noqa: F811
    """#36.4: a sentence-transformers export's files (weights, pipeline) in the folder; a classifier exported into it."""
    out = env.tmp / "out"
    with output_files(out, kind="bort export", marker="export.json") as tmp:
        _fill(tmp, {"export.json": "{}", "model.safetensors": "w", "modules.json": "[]", "1_Pooling/config.json": "{}", "model.onnx": "g"})
    assert main([str(a) for a in run_export(env)]) == 0
    files = json.loads((out / MANIFEST).read_text())["files"]
    assert not {"model.safetensors", "modules.json", "1_Pooling/config.json"} & set(files)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != MANIFEST) == files
    assert json.loads((out / "export.json").read_text())["head"] == "classification"


_KILLED_BENCH = """
import os, signal, sys
import bort.bench.recipe as bench
from bort.cli import main

def die(*args, **kwargs):  # the exports are made, the figures not yet written
    os.kill(os.getpid(), signal.SIGKILL)

bench._plot = die
main(sys.argv[1:])
"""


def test_a_killed_bench_is_redone(env: Env):  # noqa: F811
    """#36.5: a bench killed after its exports (as `bort compress` killed in its bench stage) leaves no half-written folder."""
    argv = [str(a) for a in run_bench(env, models=[env.classifier], out="bench")] + ["--no-progress"]
    killed = subprocess.run([sys.executable, "-c", _KILLED_BENCH, *argv], capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    out = env.tmp / "bench"
    assert [p.name for p in out.iterdir()] in ([], [LOCK])  # the work was beside it
    assert any(is_temp(p.name) for p in env.tmp.iterdir())
    assert main(argv) == 0
    doc = json.loads((out / "bench.json").read_text())
    folder = Path(doc["models"][0]["onnx-fp32"]["folder"])
    assert folder.parent.parent == out and (folder / "model.onnx").is_file()  # recorded where it is, not where it was made
    assert [p.name for p in env.tmp.iterdir() if is_temp(p.name) or p.name.endswith(".bort-previous")] == []
    assert os.listdir(out) and LOCK not in os.listdir(out)
