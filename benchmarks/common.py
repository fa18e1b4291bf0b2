"""Paths the benchmark scripts share: the project, their outputs, the shared GLUE data and its task folders."""

from __future__ import annotations

import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"  # git-ignored
FINETUNED = OUT / "finetune"  # benchmarks/finetune_bench.py's fine-tuned models, <model>/<task>
GLUE = ROOT.parent / "shared" / "data" / "glue"
GLUE_FOLDERS = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "rte": "RTE"}  # task → its folder under GLUE


def glue_score(dev: dict[str, float]) -> float:
    """The GLUE leaderboard's number for a task (×100): the mean of its metrics where it has two."""
    return 100 * statistics.mean(dev.values())
