"""Paths and helpers the benchmark scripts share: the project, their outputs, the committed results, the shared data, and
the provenance every result file records (commit, machine, date)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"  # git-ignored: models, checkpoints, logs
RESULTS = ROOT / "benchmarks" / "results"  # committed: one small JSON per measured figure
FINETUNED = OUT / "finetune"  # benchmarks/finetune_bench.py's fine-tuned models, <model>/<task>
SHARED = ROOT.parent / "shared" / "data"
GLUE = SHARED / "glue"
PRETRAIN_STEPS = 2000  # benchmarks/scoreboard.py's students are pretrained this long unless it is given --pretrain-steps
GLUE_FOLDERS = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "rte": "RTE"}  # task → its folder under GLUE


def glue_score(dev: dict[str, float]) -> float:
    """The GLUE leaderboard's number for a task (×100): the mean of its metrics where it has two."""
    return 100 * statistics.mean(dev.values())


def provenance() -> dict:
    """What a result file records of where it came from: the commit (and whether the tree had changes), the machine, the time."""
    from bort.machine import cpu_info, versions

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "machine": {**cpu_info(), **versions()}, "load_avg": list(os.getloadavg()),  # 1, 5, 15 minutes: other jobs slow the times, not the scores
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write_result(path: Path, doc: dict) -> Path:
    """Write one committed result file (indented JSON, written whole then renamed)."""
    from bort.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path
