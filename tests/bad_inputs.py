"""The machinery of the table-driven bad-input suites (issues 13 and 36): what a case sees, fast command lines of
every verb, hostile files and folders, and the contract each refusal must keep (:func:`check_refused`).

A suite module imports the fixtures below (``env`` and the ones it needs) and parametrises over its own ``CASES``
with :func:`param`; see ``test_bad_inputs.py``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import test_hostile_inputs as hostile
from conftest import SEQ_LEN
from test_reliability import tree

from bort.atomic import LOCK
from bort.cli import main

classifier, export = hostile.classifier, hostile.export  # its module fixtures (a glue/sst2 classifier and its export), built again here

# ------------------------------------------------------------------ what a case sees


@dataclasses.dataclass
class Env:
    """The paths a case builds its command from: shared read-only inputs, and its own folder ``tmp``."""

    tmp: Path
    teacher: Path  # tiny BERT masked-LM ⟨2,4,64,128⟩, 64 positions
    nohead: Path  # the same encoder without an MLM head
    corpus: Path
    space: Path
    classifier: Path  # a glue/sst2 classifier, as `bort finetune` saves it
    export: Path  # its `bort export` folder
    data: Path  # a glue/sst2 task folder (train.tsv, dev.tsv)
    extract_args: Callable[..., list[str]]

    def copy(self, src: Path, name: str = "model") -> Path:
        """A private copy of a shared model in the case's folder, to damage or to point --out at."""
        return Path(shutil.copytree(src, self.tmp / name))

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return path

    def foreign(self, name: str = "out") -> Path:
        """A user's non-empty folder: bort must refuse it and leave ``notes.txt`` alone."""
        return self.write(f"{name}/notes.txt", "my notes: keep me\n").parent


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    verb: str  # extract, pretrain, finetune, agora (finetune --agora), evaluate, export, predict, bench, prepare (teacher prepare)
    argv: Callable[[Env], list]
    needle: str | tuple[str, ...]
    setup: Callable[[Env], object] | None = None  # may return a function that undoes it after the command (a held lock)
    stdin: bytes | None = None
    proc: bool = False  # through a real `python -m bort` subprocess
    bug: str | None = None  # a known bort bug (see KNOWN_BUGS): the case is xfail(strict=True) with this reason,
    fails: type[AssertionError] | None = None  # failing only with this check: Refused, WrongMessage or LeftBehind


class Refused(AssertionError):
    """The refusal itself is wrong: a traceback, an exit status other than 2, not one ``bort: error:`` line, or output."""


class WrongMessage(AssertionError):
    """One error line, but it does not say what the case expects (it names the wrong thing, or the table is wrong)."""


class LeftBehind(AssertionError):
    """The command was refused as it should be, but left files behind or changed its inputs."""


# ------------------------------------------------------------------ fast command lines of every verb


def run_extract(e: Env, *extra, teacher=None, out="out") -> list:
    return e.extract_args(teacher or e.teacher, e.tmp / out, "--latency", "flops", *extra)


def run_pretrain(e: Env, *extra, teacher=None, out="out", arch=("--arch", "1,2,32,64")) -> list:
    return ["pretrain", "--teacher", teacher or e.teacher, "--out", e.tmp / out, "--corpus", e.corpus, *arch, "--seq-len", SEQ_LEN,
            "--steps", "1", "--batch-size", "4", "--eval-sequences", "8", "--head-steps", "1", "--bf16", "off", "--device", "cpu",
            "--no-progress", *extra]


def run_finetune(e: Env, *extra, model=None, data=None, out="out", steps=("--steps", "1")) -> list:
    return ["finetune", "--model", model or e.classifier, "--task", "glue/sst2", "--data", data or e.data, "--out", e.tmp / out, *steps,
            "--batch-size", "4", "--max-seq-len", SEQ_LEN, "--device", "cpu", "--bf16", "off", "--no-progress", *extra]


def run_agora(e: Env, *extra, **kw) -> list:
    return run_finetune(e, "--agora", "--max-rounds", "1", *extra, **kw)


def run_evaluate(e: Env, *extra, model=None, data=None, task="glue/sst2") -> list:
    return ["evaluate", "--model", model or e.classifier, "--task", task, "--data", data or e.data, "--device", "cpu", *extra]


def run_export(e: Env, *extra, model=None, out="out") -> list:
    return ["export", "--model", model or e.classifier, "--out", e.tmp / out, *extra]


def run_predict(e: Env, *extra, model=None, input=None) -> list:
    return ["predict", "--model", model or e.export, "--input", input or e.tmp / "in.txt", *extra]


def run_bench(e: Env, *extra, models=None, out="out") -> list:
    return ["bench", "--models", *(models or [e.export]), "--batch", "1", "--seq", "16", "--out", e.tmp / out, "--warmup", "0",
            "--rounds", "1", "--runs", "1", "--runtimes", "onnx-fp32", *extra]


def run_prepare(e: Env, *extra, teacher=None, out="out") -> list:
    return ["teacher", "prepare", "--teacher", teacher or e.nohead, "--out", e.tmp / out, "--corpus", e.corpus, "--seq-len", SEQ_LEN,
            "--steps", "1", "--batch-size", "4", "--device", "cpu", *extra]


def run_compress(e: Env, *extra, teacher=None, out="out", task=("--task", "glue/sst2")) -> list:
    """A tiny ``bort compress`` on glue/sst2 (never reached by a refused case: each is refused before its first stage)."""
    return ["compress", "--teacher", teacher or e.teacher, "--corpus", e.corpus, "--space", e.space, "--out", e.tmp / out, "--seq-len", SEQ_LEN,
            "--latency", "flops", "--latency-seq", SEQ_LEN, "--min-speedup", "2", "--extract-steps", "2", "--epsilon", "4", "--pretrain-steps", "2",
            "--pretrain-batch-size", "4", "--finetune-steps", "2", "--batch-size", "4", "--max-seq-len", SEQ_LEN, "--augment", "1",
            "--bench-seq", SEQ_LEN, "--bench-rounds", "1", "--bench-runs", "1", "--bench-warmup", "0", "--device", "cpu", "--no-progress",
            *task, *extra]


# ------------------------------------------------------------------ hostile files and folders


def in_txt(text: str | bytes, name: str = "in.txt"):
    return lambda e: e.write(name, text)


def model_copy(damage=None, src="classifier", name="model"):
    """Setup: a private copy of a shared model, damaged by ``damage(folder)``."""

    def setup(e: Env) -> None:
        folder = e.copy(getattr(e, src), name)
        if damage:
            damage(folder)

    return setup


def json_list_config(folder: Path) -> None:
    (folder / "config.json").write_text("[1, 2]", encoding="utf-8")


def unknown_head(folder: Path) -> None:
    info = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    (folder / "export.json").write_text(json.dumps({**info, "head": "token_classification"}), encoding="utf-8")


def sst2_without(split: str):
    def setup(e: Env) -> None:
        hostile.write_sst2(e.tmp / "data")
        (e.tmp / "data" / f"{split}.tsv").unlink()

    return setup


def sst2_with_train(text: str):
    def setup(e: Env) -> None:
        hostile.write_sst2(e.tmp / "data")
        (e.tmp / "data" / "train.tsv").write_text(text, encoding="utf-8")

    return setup


def locked(e: Env) -> Callable[[], None]:
    """An --out folder whose lock another bort process holds (a second open file description, so flock conflicts)."""
    (e.tmp / "out").mkdir()
    path = e.tmp / "out" / LOCK
    path.write_text("4242 bort export\n", encoding="utf-8")
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return lambda: os.close(fd)


def yaml(name: str, text: str):
    return lambda e: e.write(name, text)


T, D, Y = "model", "data", "c.yaml"  # the names setups use in the case's folder
LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 25)  # 225 words: past the tiny models' 64 positions



# ------------------------------------------------------------------ the contract


@pytest.fixture(scope="module")
def sst2(tmp_path_factory) -> Path:
    return hostile.write_sst2(tmp_path_factory.mktemp("sst2"))


@pytest.fixture
def env(tmp_path, bert_teacher, bert_teacher_nohead, corpus_file, space_file, classifier, export, sst2, extract_args) -> Env:
    return Env(tmp_path, bert_teacher, bert_teacher_nohead, corpus_file, space_file, classifier, export, sst2, extract_args)


def param(case: Case):
    marks = [pytest.mark.xfail(strict=True, raises=case.fails, reason=f"bort bug: {case.bug}")] if case.bug else []
    return pytest.param(case, id=case.id, marks=marks)


def changes(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    """What differs between two :func:`tree` listings: added, removed and changed paths."""
    changes = {"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
               "changed": sorted(k for k in set(before) & set(after) if before[k] != after[k])}
    return {k: v for k, v in changes.items() if v}


def shared_trees(e: Env) -> dict[str, dict[str, str]]:
    return {str(p): tree(p) for p in (e.teacher, e.nohead, e.corpus.parent, e.space.parent, e.classifier, e.export, e.data)}


# Not bort's: ONNX Runtime writes its telemetry session id into the system's temporary folder when a process first imports it.
NOT_BORTS = {"systmp/.ses"}



def check_refused(case: Case, env: Env, capsys, monkeypatch, bort_cmd) -> None:
    """Run one case and raise :class:`Refused`, :class:`WrongMessage` or :class:`LeftBehind` where it breaks the contract."""
    systmp = env.tmp / "systmp"  # the system's temporary folder during the case: a leftover there is the case's
    systmp.mkdir()
    cleanup = case.setup(env) if case.setup else None
    argv = [str(a) for a in case.argv(env)]
    before, shared = tree(env.tmp), shared_trees(env)
    try:
        if case.proc:
            p = subprocess.run([*bort_cmd, *argv], input=case.stdin, capture_output=True, timeout=120, check=False,
                               env={**os.environ, "TMPDIR": str(systmp)})
            code, out, err = p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        else:
            monkeypatch.setattr(tempfile, "tempdir", str(systmp))
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's usage and error: no case of the table should reach it
                code = exc.code
            except Exception as exc:  # what the command line would show as a traceback
                raise Refused(f"traceback: {type(exc).__name__}: {exc}") from exc
            out, err = capsys.readouterr()
    finally:
        if callable(cleanup):
            cleanup()
    lines = err.strip().splitlines()
    if code != 2 or "Traceback" in err or len(lines) != 1 or not lines[0].startswith("bort: error: ") or out:
        raise Refused(f"exit status {code}; stdout {out[:300]!r}; stderr:\n{err[-3000:]}")
    missing = [n for n in ((case.needle,) if isinstance(case.needle, str) else case.needle) if n not in lines[0]]
    if missing:
        raise WrongMessage(f"{missing} not in: {lines[0]}")
    left = changes(before, {k: v for k, v in tree(env.tmp).items() if k not in NOT_BORTS})
    if left:  # nothing written or removed: no --out, no temporary, no lock file, no pickle payload; the user's files intact
        raise LeftBehind(f"{lines[0]}\n{left}")
    damaged = {p: c for p, t in shared.items() if (c := changes(t, tree(p)))}
    if damaged:
        raise LeftBehind(f"shared inputs changed: {damaged}")


