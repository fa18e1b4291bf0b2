"""A task-distillation step of the ≥ 4× student on CPU, before and after session 5's changes, side by side (docs/design.md,
"Training on CPU"): SDPA attention, AdamW's default kernels and the teacher run on every step, against the matrix-product
attention, fused AdamW and the teacher's views stored once. Both arms train the same student on the same MRPC batches
(bf16 autocast, one thread), in alternating rounds; the result is the ratio of their median step times.

    python benchmarks/train_step.py [--rounds 3] [--steps 15]   → benchmarks/results/training/train-step.json
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from common import GLUE, OUT, RESULTS, provenance, write_result

from bort.compress import CompressConfig
from bort.finetune.task_distill import Objective, TaskTeacher
from bort.tasks import heads
from bort.tasks.features import encode, task_batch_stream
from bort.tasks.source import OwnData, open_task
from bort.training.loop import matmul_attention

STUDENT = OUT / "scoreboard" / "students" / "fast"
TEACHER = OUT / "scoreboard" / "runs" / "seed0" / "mrpc" / "teacher" / "lr3e-05"


def arm(new: bool, features, teacher: TaskTeacher, spec, cache: Path, steps: int) -> float:
    """Seconds per step of one arm, after two warm-up steps."""
    model = heads.build(STUDENT, spec, "linear", 128, 0)
    objective = Objective(model, spec, replace(CompressConfig().task_distill, teacher=str(TEACHER)), teacher, torch.device("cpu"))
    if new:
        matmul_attention(objective.module)
        assert objective.use_stored_views(cache, features, limit_gb=8, autocast=torch.bfloat16)
    optimizer = torch.optim.AdamW(objective.module.parameters(), lr=1e-4, fused=new or None)
    batches = task_batch_stream(features, 32, teacher.tokenizer.pad_token_id, 0)
    for i in range(steps + 2):
        if i == 2:
            started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = objective(next(batches))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return (time.perf_counter() - started) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--examples", type=int, default=3200)
    args = ap.parse_args()
    if not (STUDENT.is_dir() and TEACHER.is_dir()):
        raise SystemExit(f"needs the scoreboard's fast student ({STUDENT}) and MRPC teacher ({TEACHER}): run benchmarks/scoreboard.py first")
    torch.set_num_threads(1)
    data = open_task("glue/mrpc", GLUE / "MRPC", OwnData())
    teacher = TaskTeacher(str(TEACHER), data.spec, STUDENT, device=torch.device("cpu"), max_len=128, batch_size=64)
    with tempfile.TemporaryDirectory() as tmp:
        features = teacher.stored_targets(Path(tmp), encode(data.spec, data.split("train")[: args.examples], teacher.tokenizer, 128))
        arm(True, features, teacher, data.spec, Path(tmp), 1)  # the stored views, made once outside the timed rounds
        times = {"before": [], "after": []}
        for _, new in itertools.product(range(args.rounds), (False, True)):
            times["after" if new else "before"].append(arm(new, features, teacher, data.spec, Path(tmp), args.steps))
    before, after = statistics.median(times["before"]), statistics.median(times["after"])
    doc = {"benchmark": "train-step", "task": "glue/mrpc", "student": "2,12,384,768", "teacher": "all-MiniLM-L6-v2 fine-tuned on MRPC",
           "batch_size": 32, "threads": 1, "autocast": "bf16", "examples": args.examples, "rounds": args.rounds, "steps": args.steps,
           "before": "SDPA attention, AdamW default, the teacher on every step", "after": "matrix-product attention, fused AdamW, stored views",
           "seconds_per_step": times, "median_before_s": before, "median_after_s": after, "speedup": before / after, **provenance()}
    write_result(RESULTS / "training" / "train-step.json", doc)
    print(f"{before:.3f} s → {after:.3f} s a step: {before / after:.2f}× (median of {args.rounds} alternating rounds)")


if __name__ == "__main__":
    main()
