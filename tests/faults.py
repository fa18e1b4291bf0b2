"""The harness of the fault tests (test_faults.py): kill a bort process at a chosen point, resume it, compare.

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
from conftest import reaped
from safetensors.torch import load_file

from bort.atomic import LOCK, is_temp
from bort.cli import main

FREEZE = "BORT_TEST_FREEZE"
TIMEOUT = 300  # seconds, for one bort process
# Fields that measure wall time (they differ between any two runs), at any depth of a JSON file or checkpoint.
TIME_KEYS = frozenset({"wall_s", "train_s", "dev_evals_s", "final_eval_s", "elapsed", "seconds", "created"})

# Installed as ``sitecustomize`` in the killed process only: it freezes at the n-th audit event of a kind
# whose subject (a path; for a rename "SRC -> DST") matches the pattern.
SITECUSTOMIZE = r'''
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


def json_lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()] if path.is_file() else []


def logged_steps(path: Path) -> list[int]:
    return [line["step"] for line in json_lines(path)]


def checkpoint_step(out: Path) -> int | None:
    state = out / "checkpoint" / "state.json"
    return json.loads(state.read_text(encoding="utf-8"))["step"] if state.is_file() else None


def temp_names(out: Path, label: str = "") -> list[str]:
    """bort's temporaries in ``out`` and in a run's ``out/model``."""
    return [p.name for folder in (out, out / "model") if folder.is_dir() for p in folder.iterdir() if is_temp(p.name) and p.name.endswith(label)]


def stored_trials(out: Path, columns: str = "arch, theta, error") -> list[tuple]:
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
            want, got = [_normal(x, ref) for x in json_lines(a)], [_normal(x, out) for x in json_lines(b)]
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
