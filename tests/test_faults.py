"""The fault test of issue 13: kill -9 every stage at chosen points, run the same command again, and
end with exactly the outputs of an uninterrupted run.

For each stage (extract, pretrain, finetune, Agora, export) and each kill point, the real CLI
(``python -m bort …``) runs as a subprocess and is killed with SIGKILL at that point; the identical
command then runs again, as a new process, to completion. Its folder is compared with an
uninterrupted run of the same command in another folder (run once per stage, in this process):

- the same files, and in every ``*.safetensors`` the same tensors, bit for bit (bort resumes exactly),
  the same checkpoint state (optimiser, scheduler, RNG), the same ``model.onnx`` bytes;
- the same JSON files and run store, less wall-time fields (``wall_s``, ``train_s``, …) and the
  output folder's own path;
- the same metric lines, each once;
- no leftovers: no ``.bort-tmp-*`` entry, no ``.bort.lock`` once it is done, nothing of bort's in
  the temporary folder (``TMPDIR``, a folder of the test's own) and no new ``/tmp/bort-onnx-*``;
- and the second process is not refused by the lock the killed one left (a stale lock is taken over).

Kill points are chosen deterministically, never by sleeping:

- *event* points freeze the process at the n-th file operation that matches a pattern (a rename
  ``SRC -> DST``, an ``open``, an ``rmtree``, a ``mkdtemp``). A ``sitecustomize`` on the killed
  process's ``PYTHONPATH`` installs an audit hook (:func:`sys.addaudithook`) that, at that event,
  writes a flag file and sends itself SIGSTOP; bort's code is not touched. Audit events are raised
  before the operation, so "at the rename of X" means "X is fully written, not yet in place".
- *poll* points watch the folder (the n-th trial row of ``bort.sqlite``), then SIGSTOP the process.

Either way the test waits until the process is stopped, checks that the folder is in the state the
point names (so the kill provably lands mid-run: a run that had finished would make the test
vacuous, and fails it loudly instead), and only then sends SIGKILL.

One kill point per stage runs by default; the others are marked ``slow``.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import SEQ_LEN, reaped
from safetensors.torch import load_file
from test_finetune import write_rte

from bort.atomic import LOCK, is_temp
from bort.cli import main

FREEZE = "BORT_TEST_FREEZE"
TIMEOUT = 300  # seconds, for one bort process
# Fields that measure wall time (they differ between any two runs), at any depth of a JSON file or checkpoint.
TIME_KEYS = frozenset({"wall_s", "train_s", "dev_evals_s", "final_eval_s", "elapsed", "seconds", "created"})

# Installed as ``sitecustomize`` in the killed process only: it freezes at the n-th audit event of a kind
# whose subject (a path; for a rename "SRC -> DST") matches the pattern.
_SITECUSTOMIZE = r'''
import os

if os.environ.get("BORT_TEST_FREEZE"):
    import json
    import re
    import signal
    import sys

    _spec = json.loads(os.environ["BORT_TEST_FREEZE"])
    _pattern, _left, _busy = re.compile(_spec["match"]), [_spec["nth"]], [False]

    def _path(p):
        return os.fsdecode(p) if isinstance(p, (str, bytes, os.PathLike)) else ""

    def _freeze(event, args):
        if event != _spec["event"] or _busy[0] or _left[0] <= 0:
            return
        _busy[0] = True  # the flag file's own open raises an audit event too
        try:
            subject = f"{_path(args[0])} -> {_path(args[1])}" if event == "os.rename" else _path(args[0])
            if _pattern.search(subject):
                _left[0] -= 1
                if _left[0] == 0:
                    with open(_spec["flag"], "w", encoding="utf-8") as f:
                        f.write(subject)
                    os.kill(os.getpid(), signal.SIGSTOP)  # the test kills us here
        finally:
            _busy[0] = False

    sys.addaudithook(_freeze)
'''


# ------------------------------------------------------------------ kill points


@dataclass(frozen=True)
class Point:
    """Where to kill: the n-th audit ``event`` whose subject matches ``match`` (``{out}`` stands for the
    escaped output folder), or the moment ``poll(out)`` holds. ``state(out)`` asserts, on the stopped
    process's folder, that the kill lands where the point says (and so before the run finished)."""

    name: str
    state: Callable[[Path], None]
    event: str | None = None
    match: str = ""
    nth: int = 1
    poll: Callable[[Path], bool] | None = None
    resumes: str | None = None  # what the second run says on stderr when it goes on from a checkpoint (not afresh)
    slow: bool = False
    xfail: str | None = None

    def param(self):
        marks = [pytest.mark.slow] if self.slow else []
        if self.xfail:
            marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=self.xfail))
        return pytest.param(self, id=self.name, marks=marks)


def _lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()] if path.is_file() else []


def _steps(path: Path) -> list[int]:
    return [line["step"] for line in _lines(path)]


def _checkpoint_step(out: Path) -> int | None:
    state = out / "checkpoint" / "state.json"
    return json.loads(state.read_text(encoding="utf-8"))["step"] if state.is_file() else None


def _temps(out: Path, label: str = "") -> list[str]:
    """bort's temporaries in ``out`` and in a run's ``out/model``."""
    return [p.name for folder in (out, out / "model") if folder.is_dir() for p in folder.iterdir() if is_temp(p.name) and p.name.endswith(label)]


def _trials(out: Path, columns: str = "arch, theta, error") -> list[tuple]:
    """The stored trials' ``columns``; empty while the store or its table does not exist."""
    path = out / "bort.sqlite"
    if not path.is_file():
        return []
    db = sqlite3.connect(path, timeout=5)
    try:
        return sorted(db.execute(f"SELECT {columns} FROM trial"))
    except sqlite3.OperationalError:  # the table is not created yet
        return []
    finally:
        db.close()


STAGED = r"-staged/[^/]+ -> {out}/(model/)?[^/]+$"  # a file renamed from the staging folder into OUT (a run's model: OUT/model)


# ------------------------------------------------------------------ running and killing


def _stopped(pid: int) -> bool | None:
    """True once the process is stopped, None once it has exited (a zombie), else False."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None
    return None if state in "ZX" else state in "Tt"


class Runner:
    """Runs ``python -m bort`` with one thread, offline, with a temporary folder of the test's own."""

    def __init__(self, bort_cmd: list[str], tmp: Path, site: Path):
        self.cmd, self.tmp, self.site = bort_cmd, tmp, site
        (tmp / "tmpdir").mkdir()
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                    "TMPDIR": str(tmp / "tmpdir")}
        self.env.pop(FREEZE, None)

    def kill_at(self, argv: list[str], out: Path, point: Point) -> None:
        """Start bort, stop it at ``point``, check the folder's state there, and SIGKILL it."""
        env, flag = dict(self.env), self.tmp / f"frozen-{point.name}"
        if point.event:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.site), env.get("PYTHONPATH")]))
            env[FREEZE] = json.dumps({"event": point.event, "match": point.match.replace("{out}", re.escape(str(out))), "nth": point.nth,
                                      "flag": str(flag)})
        log = self.tmp / f"killed-{point.name}.stderr"
        with open(log, "wb") as err:
            proc = subprocess.Popen([*self.cmd, *argv], stdout=subprocess.DEVNULL, stderr=err, env=env)
        with reaped(proc):
            deadline = time.monotonic() + TIMEOUT
            while not (flag.exists() if point.event else point.poll(out)):
                if proc.poll() is not None:
                    pytest.fail(f"kill point {point.name!r}: bort exited ({proc.returncode}) before reaching it, so a kill would prove "
                                f"nothing; move the point earlier. stderr:\n{log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"kill point {point.name!r} not reached within {TIMEOUT} s")
                time.sleep(0.005)
            if not point.event:
                os.kill(proc.pid, signal.SIGSTOP)
            while not _stopped(proc.pid):
                if _stopped(proc.pid) is None or time.monotonic() > deadline:
                    pytest.fail(f"kill point {point.name!r}: bort exited ({proc.poll()}) before it could be stopped there")
                time.sleep(0.001)
            try:
                point.state(out)  # where the kill lands: mid-run, as the point says
            except AssertionError as exc:  # not a finding about bort's outputs (xfail tests expect only those)
                pytest.fail(f"kill point {point.name!r}: the folder is not in the state the point names: {exc}")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        if proc.returncode != -signal.SIGKILL:
            pytest.fail(f"kill point {point.name!r}: exit status {proc.returncode}, not SIGKILL's")
        # The lock file stays, naming the dead process: the next run must take it over.
        if not (out / LOCK).is_file() or (out / LOCK).read_text(encoding="utf-8").split()[:1] != [str(proc.pid)]:
            pytest.fail(f"kill point {point.name!r}: the killed process left no lock file of its own")

    def run(self, argv: list[str]) -> subprocess.CompletedProcess:
        """The same command again, to completion, as a new process."""
        done = subprocess.run([*self.cmd, *argv], capture_output=True, text=True, env=self.env, timeout=TIMEOUT)
        if "in use by another bort process" in done.stderr:
            pytest.fail(f"the second run was refused: the killed run's stale lock was not taken over: {done.stderr[-1000:]}")
        if done.returncode != 0:
            pytest.fail(f"the second run failed ({done.returncode}): {done.stderr[-3000:]}")
        return done


@pytest.fixture(scope="session")
def freeze_site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("freeze_site")
    (folder / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
    return folder


@pytest.fixture
def runner(tmp_path, bort_cmd, freeze_site) -> Runner:
    return Runner(bort_cmd, tmp_path, freeze_site)


def reference(folder: Path, argv: list[str]) -> Path:
    """The uninterrupted run, in this process: the same code on one thread (as the CLI's OMP_NUM_THREADS=1), so the
    same numbers, bit for bit. (Another test's in-process ``bort predict`` or ``bench`` may have left more threads.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return folder


def kill_and_resume(runner: Runner, argv: Callable[[Path], list[str]], point: Point, ref: Path, out: Path,
                    between: Callable[[], Callable[[], None]] | None = None) -> None:
    """Kill the command at ``point``, run it again, and compare with ``ref``. ``between()`` runs after the
    kill and returns a check to run after the second run."""
    onnx_before = set(glob.glob("/tmp/bort-onnx-*"))
    runner.kill_at(argv(out), out, point)
    after = between() if between else None
    done = runner.run(argv(out))
    if point.resumes:
        assert point.resumes in done.stderr, f"the second run did not resume ({point.resumes!r} not said): {done.stderr[-2000:]}"
    if after:
        after()
    assert_no_leftovers(out, runner.tmp / "tmpdir", onnx_before)
    assert_same_outputs(ref, out)


# ------------------------------------------------------------------ comparing


def assert_no_leftovers(out: Path, tmpdir: Path, onnx_before: set[str]) -> None:
    found = [str(p.relative_to(out)) for p in out.rglob("*") if is_temp(p.name) or p.name == LOCK]
    assert not found, f"left behind in {out}: {found}"
    # (ONNX Runtime keeps a session file, .ses, and torch an empty torchinductor_<user> folder there: not bort's.)
    assert not [p.name for p in tmpdir.rglob("*") if "bort" in p.name], "bort left something in TMPDIR"
    assert set(glob.glob("/tmp/bort-onnx-*")) <= onnx_before, "a bort-onnx-* folder was left in /tmp"


def _normal(value, out: Path):
    """JSON values less wall-time fields, with the output folder's path replaced by <OUT>."""
    if isinstance(value, dict):
        return {k: _normal(v, out) for k, v in value.items() if k not in TIME_KEYS}
    if isinstance(value, (list, tuple)):
        return [_normal(v, out) for v in value]
    if isinstance(value, str):
        return value.replace(str(out), "<OUT>")
    return value


def _text(path: Path, out: Path) -> str:
    """A text file with the output folder's path replaced by <OUT> and wall times ("in 2 s") by <T>."""
    return re.sub(r"\b\d+(?:\.\d+)? s\b", "<T> s", path.read_text(encoding="utf-8").replace(str(out), "<OUT>"))


def _same(a, b, where: str) -> None:
    """Exact equality of nested checkpoint values (tensors bit for bit), less wall-time fields."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) - TIME_KEYS == set(b) - TIME_KEYS, f"{where}: keys differ"
        for k in set(a) - TIME_KEYS:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _store(path: Path, out: Path) -> dict:
    db = sqlite3.connect(path)
    try:
        return {
            "settings": _normal(json.loads(db.execute("SELECT value FROM meta WHERE key='settings'").fetchone()[0]), out),
            "trial": sorted(db.execute("SELECT arch, theta, error FROM trial")),
            "latency": sorted(db.execute("SELECT arch, settings, latency_ms FROM latency")),
        }
    finally:
        db.close()


def assert_same_outputs(ref: Path, out: Path) -> None:
    """``out`` holds what the uninterrupted run left in ``ref``: the same files, compared by kind."""

    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}

    assert files(out) == files(ref), f"only in the resumed run: {sorted(files(out) - files(ref))}; missing: {sorted(files(ref) - files(out))}"
    for rel in sorted(files(ref)):
        a, b = ref / rel, out / rel
        if rel.endswith(".safetensors"):
            _same(load_file(str(a)), load_file(str(b)), rel)
        elif rel.endswith(".pt"):  # a checkpoint's optimiser, scheduler, loop state and RNG states
            _same(torch.load(a, weights_only=True), torch.load(b, weights_only=True), rel)
        elif rel.endswith(".jsonl"):
            want, got = [_normal(x, ref) for x in _lines(a)], [_normal(x, out) for x in _lines(b)]
            keys = [(x.get("round"), x.get("step"), x.get("idx")) for x in got]
            assert len(set(keys)) == len(keys), f"{rel}: duplicated lines {keys}"
            assert got == want, f"{rel} differs:\n{got}\n!=\n{want}"
        elif rel.endswith(".json"):
            assert _normal(json.loads(b.read_text(encoding="utf-8")), out) == _normal(json.loads(a.read_text(encoding="utf-8")), ref), rel
        elif rel.endswith(".sqlite"):
            assert _store(b, out) == _store(a, ref), rel
        elif rel.endswith((".sqlite-wal", ".sqlite-shm")):
            continue  # the store's journal: its content is the store's, compared above
        elif rel.endswith((".onnx", ".png")):
            assert b.read_bytes() == a.read_bytes(), f"{rel}: the bytes differ"
        else:
            assert _text(b, out) == _text(a, ref), rel


# ------------------------------------------------------------------ extract


def _extract_unfinished(rows: tuple[int, int]) -> Callable[[Path], None]:
    def state(out: Path) -> None:
        n = len(_trials(out))
        assert rows[0] <= n <= rows[1] and not (out / "result.json").exists(), f"{n} trials stored"

    return state


def _extract_final(out: Path) -> None:
    assert (out / "result.json").is_file() and not (out / "best").exists() and _temps(out, "-best")


EXTRACT_POINTS = [
    Point("after-trials", _extract_unfinished((2, 6)), poll=lambda out: len(_trials(out)) >= 2),
    Point("before-first-trial", _extract_unfinished((0, 0)), event="open", match=r"/corpus\.txt$", slow=True),  # the store is open
    Point("final-save", _extract_final, event="os.rename", match=r"-best -> {out}/best$", slow=True),
]


@pytest.fixture(scope="module")
def extract_ref(tmp_path_factory, bert_teacher, extract_args):
    def argv(out: Path) -> list[str]:
        # FLOPs, not measured latency, so both runs train the same 7 of the 14 eligible candidates.
        return extract_args(bert_teacher, out, "--latency", "flops", "--epsilon", "2", "--steps", "20")

    out = tmp_path_factory.mktemp("extract_ref") / "run"
    reference(out, argv(out))
    assert len(_trials(out)) == 7
    return argv, out


def _not_trained_again(out: Path) -> Callable[[], None]:
    """After the kill: the stored trials, with their timestamps; the check that the second run kept them as they were."""
    before = _trials(out, "arch, theta, error, created")

    def check() -> None:
        after = {row[:2]: row for row in _trials(out, "arch, theta, error, created")}
        assert all(after[row[:2]] == row for row in before), "a trial stored before the kill was trained again"

    return check


@pytest.mark.parametrize("point", [p.param() for p in EXTRACT_POINTS])
def test_extract_resumes_after_kill(point, extract_ref, runner, tmp_path):
    argv, ref = extract_ref
    out = tmp_path / "run"
    kill_and_resume(runner, argv, point, ref, out, between=lambda: _not_trained_again(out))


@pytest.fixture(scope="module")
def extract_headless_ref(tmp_path_factory, bert_teacher_nohead, extract_args):
    def argv(out: Path) -> list[str]:
        return extract_args(bert_teacher_nohead, out, "--latency", "flops", "--epsilon", "2")

    out = tmp_path_factory.mktemp("extract_headless_ref") / "run"
    reference(out, argv(out))
    return argv, out


def _head_trained(out: Path) -> None:  # the prepared teacher is built beside OUT/teacher_mlm, and swapped in whole
    assert not _trials(out) and _temps(out, "-teacher_mlm") and not (out / "teacher_mlm" / "bort_teacher.json").exists()


@pytest.mark.slow
def test_extract_with_a_headless_teacher_resumes_after_kill(extract_headless_ref, runner, tmp_path):
    argv, ref = extract_headless_ref
    point = Point("teacher-head-save", _head_trained, event="os.rename", match=r"-teacher_mlm -> {out}/teacher_mlm$")
    kill_and_resume(runner, argv, point, ref, tmp_path / "run")


# ------------------------------------------------------------------ pretrain


def _pretrain_state(checkpoint: int | None, lines: list[int], staging: bool = False) -> Callable[[Path], None]:
    def state(out: Path) -> None:
        assert _checkpoint_step(out) == checkpoint and _steps(out / "metrics.jsonl") == lines
        assert not (out / "pretrain.json").exists() or staging
        assert bool(_temps(out, "-staged")) == staging

    return state


def _no_checkpoint_mid_swap(out: Path) -> None:
    # The step-4 checkpoint has been moved aside (to .checkpoint.bort-previous), the step-8 one is not yet in its place; the
    # next run puts the step-4 one back and resumes from it: no finished work is lost.
    assert not (out / "checkpoint").exists() and (out / ".checkpoint.bort-previous" / "trainer.pt").is_file() and _temps(out, "-checkpoint")
    assert _steps(out / "metrics.jsonl") == [2, 4, 6, 8]


PRETRAIN_POINTS = [
    # Step 8 logs its line, then saves: the kill leaves the step-4 checkpoint and a line (6) past it.
    Point("after-checkpoint", _pretrain_state(4, [2, 4, 6]), event="open", match=r"{out}/metrics\.jsonl$", nth=4,
          resumes="pretrain: resuming from step 4 of 12"),
    # Issue 13's defect 7: lines written before the first checkpoint were written twice.
    Point("before-first-checkpoint", _pretrain_state(None, [2]), event="open", match=r"{out}/metrics\.jsonl$", nth=2, slow=True),
    Point("checkpoint-swap", _no_checkpoint_mid_swap, event="os.rename", match=r"-checkpoint -> {out}/checkpoint$", nth=2,
          resumes="pretrain: resuming from step 4 of 12", slow=True),
    Point("final-save", _pretrain_state(12, [2, 4, 6, 8, 10, 12], staging=True), event="os.rename", match=STAGED, nth=2,
          resumes="pretrain: resuming from step 12 of 12", slow=True),
]


@pytest.fixture(scope="module")
def pretrain_ref(tmp_path_factory, bert_teacher, corpus_file):
    def argv(out: Path) -> list[str]:
        return ["pretrain", "--teacher", str(bert_teacher), "--out", str(out), "--corpus", str(corpus_file), "--arch", "1,2,32,64",
                "--seq-len", str(SEQ_LEN), "--steps", "12", "--batch-size", "4", "--save-every", "4", "--eval-every", "2",
                "--eval-sequences", "8", "--bf16", "off", "--device", "cpu", "--no-progress"]

    out = tmp_path_factory.mktemp("pretrain_ref") / "run"
    reference(out, argv(out))
    return argv, out


@pytest.mark.parametrize("point", [p.param() for p in PRETRAIN_POINTS])
def test_pretrain_resumes_after_kill(point, pretrain_ref, runner, tmp_path):
    argv, ref = pretrain_ref
    kill_and_resume(runner, argv, point, ref, tmp_path / "run")


# ------------------------------------------------------------------ finetune


@pytest.fixture(scope="module")
def rte_data(tmp_path_factory) -> Path:
    return write_rte(tmp_path_factory.mktemp("RTE"), n_train=96, n_dev=40)


def _finetune_state(checkpoint: int | None, lines: list[int], *files: str) -> Callable[[Path], None]:
    def state(out: Path) -> None:
        assert _checkpoint_step(out) == checkpoint and _steps(out / "log.jsonl") == lines
        assert {f for f in ("eval.json", "finetune.json") if (out / f).exists()} == set(files)

    return state


FINETUNE_POINTS = [
    # The step-6 evaluation opens the log: the step-3 checkpoint (and best model) are there.
    Point("after-checkpoint", _finetune_state(3, [3]), event="open", match=r"{out}/log\.jsonl$", nth=2,
          resumes="finetune: resuming from step 3 of 15"),
    # The first best model is being renamed into OUT: logged, no checkpoint yet.
    Point("before-first-checkpoint", _finetune_state(None, [3]), event="os.rename", match=STAGED, slow=True),
    # Early stopping at step 9 (patience 2): the report is being written.
    Point("final-report", _finetune_state(9, [3, 6, 9]), event="os.rename", match=r" -> {out}/finetune\.json$",
          resumes="finetune: resuming from step 9 of 15", slow=True),
    # Everything written; the checkpoint is being removed.
    Point("checkpoint-removal", _finetune_state(9, [3, 6, 9], "eval.json", "finetune.json"), event="shutil.rmtree",
          match=r"^{out}/checkpoint$", slow=True),
]


def _finetune_argv(model: Path, data: Path, out: Path) -> list[str]:
    return ["finetune", "--model", str(model), "--task", "glue/rte", "--data", str(data), "--out", str(out), "--steps", "15",
            "--eval-every", "3", "--patience", "2", "--batch-size", "16", "--lr", "1e-3", "--max-seq-len", "32",
            "--bf16", "off", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def finetune_ref(tmp_path_factory, bert_teacher, rte_data):
    def argv(out: Path) -> list[str]:
        return _finetune_argv(bert_teacher, rte_data, out)

    out = tmp_path_factory.mktemp("finetune_ref") / "run"
    reference(out, argv(out))
    report = json.loads((out / "finetune.json").read_text())
    assert report["best_step"] == 3 and report["steps_run"] == 9 and report["stopped_early"]  # what the kill points assume
    return argv, out


@pytest.mark.parametrize("point", [p.param() for p in FINETUNE_POINTS])
def test_finetune_resumes_after_kill(point, finetune_ref, runner, tmp_path):
    argv, ref = finetune_ref
    kill_and_resume(runner, argv, point, ref, tmp_path / "run")


# ------------------------------------------------------------------ Agora


def _agora_state(rounds: int, points: bool, *, round_log: str | None = None, final: bool = False) -> Callable[[Path], None]:
    def state(out: Path) -> None:
        done = json.loads((out / "agora.json").read_text())["rounds"] if (out / "agora.json").is_file() else []
        assert len(done) == rounds and bool(_lines(out / "agora_points.jsonl")) == points
        assert not (out / "eval.json").exists() and bool(_temps(out, "-staged")) == final
        if round_log:  # a glob: which θ a later round trains first depends on the earlier rounds' dev scores, so on the data
            logs = list((out / "rounds").glob(f"{round_log}/log.jsonl"))
            assert any(_steps(log) and not (log.parent / "eval.json").exists() for log in logs)

    return state


AGORA_THETAS = "lr: [1e-3]\nweight_decay: [0.01]\nwarmup: [0.1]\nbatch_size: [16]\nseed: [0, 1]\n"  # two θ: two rounds
THETA0 = "lr1e-03_wd0.01_wu0.1_bs16_s0"

AGORA_POINTS = [
    # Round 0's new points are logged, its record (agora.json) is being written.
    Point("points-before-record", _agora_state(0, True), event="os.rename", match=r" -> {out}/agora\.json$"),
    Point("round-0-training", _agora_state(0, False, round_log=f"0/{THETA0}"), event="open",
          match=r"{out}/rounds/0/[^/]+/log\.jsonl$", nth=2, resumes="finetune: resuming from step 3 of 6", slow=True),
    Point("round-1-training", _agora_state(1, True, round_log="1/*"), event="open",
          match=r"{out}/rounds/1/[^/]+/log\.jsonl$", nth=2, resumes="finetune: resuming from step 3 of 6", slow=True),
    Point("final-copy", _agora_state(2, True, final=True), event="os.rename", match=STAGED, slow=True),
]


@pytest.fixture(scope="module")
def agora_ref(tmp_path_factory, bert_teacher, rte_data):
    space = tmp_path_factory.mktemp("agora_space") / "space.yaml"
    space.write_text(AGORA_THETAS, encoding="utf-8")

    def argv(out: Path) -> list[str]:
        return ["finetune", "--agora", "--agora-space", str(space), "--model", str(bert_teacher), "--task", "glue/rte", "--data", str(rte_data),
                "--out", str(out), "--steps", "6", "--eval-every", "3", "--patience", "0", "--max-seq-len", "32", "--transform", "swap",
                "--variants", "2", "--bf16", "off", "--device", "cpu", "--no-progress"]

    out = tmp_path_factory.mktemp("agora_ref") / "run"
    reference(out, argv(out))
    rounds = json.loads((out / "agora.json").read_text())["rounds"]
    assert len(rounds) == 2 and all(r["new_points"] for r in rounds)  # what the kill points assume
    return argv, out


@pytest.mark.parametrize("point", [p.param() for p in AGORA_POINTS])
def test_agora_resumes_after_kill(point, agora_ref, runner, tmp_path):
    argv, ref = agora_ref
    kill_and_resume(runner, argv, point, ref, tmp_path / "run")


# ------------------------------------------------------------------ export


def _export_state(*, built: bool) -> Callable[[Path], None]:
    """The export is built in a temporary beside OUT (complete once ``built``); OUT holds nothing but the lock."""
    def state(out: Path) -> None:
        work = _temps(out.parent, f"-{out.name}")
        assert len(work) == 1 and (out.parent / work[0] / "export.json").is_file() == built, work
        assert [p.name for p in out.iterdir()] == [LOCK]

    return state


EXPORT_POINTS = [
    # The whole export is built, and OUT (the empty folder holding the lock) is about to be moved aside for it.
    Point("final-rename", _export_state(built=True), event="os.rename", match=r"{out} -> .*/\.run\.bort-previous$"),
    Point("onnx-work-folder", _export_state(built=False), event="tempfile.mkdtemp", match=r"-onnx$", slow=True),
    Point("fused-graph", _export_state(built=False), event="os.rename", match=r"/traced\.onnx -> .*-run/model\.onnx$", slow=True),
]


@pytest.fixture(scope="module")
def export_ref(tmp_path_factory, finetune_ref):
    model = finetune_ref[1]  # a fine-tuned classifier: the first-token last layer, the fused graph

    def argv(out: Path) -> list[str]:
        return ["export", "--model", str(model), "--out", str(out)]

    out = tmp_path_factory.mktemp("export_ref") / "run"
    reference(out, argv(out))
    return argv, out


@pytest.mark.parametrize("point", [p.param() for p in EXPORT_POINTS])
def test_export_resumes_after_kill(point, export_ref, runner, tmp_path):
    argv, ref = export_ref
    # model.onnx is compared byte for byte: the export is deterministic (same graph, same names).
    kill_and_resume(runner, argv, point, ref, tmp_path / "run")
