"""A run killed with SIGKILL mid-search resumes where it stopped and ends with the same ê values."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time

import pytest
from conftest import reaped

STEPS = "40"  # long enough that the search is still running after its first stored result


def trial_rows(out) -> dict[str, tuple]:
    """arch → (theta, error, seconds, created); empty while the store does not exist yet."""
    path = out / "bort.sqlite"
    if not path.is_file():
        return {}
    db = sqlite3.connect(path, timeout=5)
    try:
        return {r[0]: r[1:] for r in db.execute("SELECT arch, theta, error, seconds, created FROM trial")}
    except sqlite3.OperationalError:  # the table is not created yet
        return {}
    finally:
        db.close()


def test_resume_after_sigkill(tmp_path, bert_teacher, extract_args, bort_cmd):
    # ε = 1 and FLOPs (not wall-clock latency): both runs see exactly the same 14 eligible candidates.
    def args(out):
        return bort_cmd + extract_args(bert_teacher, out, "--epsilon", "1", "--latency", "flops", "--steps", STEPS)

    killed = tmp_path / "killed"
    with reaped(subprocess.Popen(args(killed), stdout=subprocess.PIPE, stderr=subprocess.PIPE)) as proc:
        deadline = time.time() + 120
        while not trial_rows(killed):
            if proc.poll() is not None:
                pytest.fail(f"bort extract exited ({proc.returncode}) before storing a result: {proc.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                pytest.fail("no trial was stored within 120 s")
            time.sleep(0.01)
        if proc.poll() is not None:
            pytest.fail(f"the run finished before it could be killed; raise STEPS (now {STEPS})")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = trial_rows(killed)
    assert not (killed / "result.json").exists()
    assert 1 <= len(before) < 14, f"the kill came too late ({len(before)} of 14 trained); raise STEPS"

    resumed = subprocess.run(args(killed), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = trial_rows(killed)
    result = json.loads((killed / "result.json").read_text(encoding="utf-8"))
    assert len(after) == result["evaluated"] == result["eligible"] == 14
    for arch, row in before.items():
        assert after[arch] == row, f"{arch} was trained again"  # same ê, same timestamp

    fresh = tmp_path / "fresh"
    straight = subprocess.run(args(fresh), capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    reference = trial_rows(fresh)
    assert set(reference) == set(after)
    for arch in reference:
        assert after[arch][1] == pytest.approx(reference[arch][1], abs=1e-6), arch
    assert json.loads((fresh / "result.json").read_text(encoding="utf-8"))["best"] == result["best"]
