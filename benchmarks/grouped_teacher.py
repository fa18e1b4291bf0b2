"""Would batches of similar lengths help or cost the teacher, as they help the student? (issue 38)

    python benchmarks/grouped_teacher.py --tasks cola,mrpc --seeds 1     # after scoreboard.py has tuned those teachers

The scoreboard measured grouping on the student (`grouped` against `fast`), which `bort compress` now does by default; this
decides whether its teacher's fine-tuning groups too (it does not: BENCHMARKS §1).
Each (task, seed) fine-tunes the scoreboard's teacher again, at the rate its result chose and with the scoreboard's settings,
on batches of similar lengths, and sets its dev score beside the random-batch teacher's (the scoreboard's run, trained on
this machine where ``retrained.json`` says so). One JSON per (task, seed) under benchmarks/results/training/grouped-teacher/,
resumable (a finished one is read back).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import RESULTS, provenance, write_result
from scoreboard import BOARD, JOBS, RETRAINED, RUNS, _config, _run

from bort.finetune.recipe import finetune
from bort.tasks.kept import task_score

OUT = RESULTS / "training" / "grouped-teacher"


def measure(name: str, seed: int, args) -> dict:
    """The grouped teacher of (task, seed) beside the scoreboard's; its result file's record."""
    path = OUT / f"{name}-seed{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    job, board = JOBS[name], json.loads((args.results / name / f"teacher-seed{seed}.json").read_text())
    lr = board["lr"]
    random_run = _run(args, job, seed, "teacher", lr)
    retrained = random_run / RETRAINED
    random_dev = json.loads(retrained.read_text())["dev"] if retrained.is_file() else board["dev"]
    started = time.time()
    out = _run(args, job, seed, "teacher-grouped", lr)
    report = finetune(_config(args.teacher, job, out, args, lr=lr, seed=seed, epochs=args.teacher_epochs, group_by_length=True))
    doc = {"benchmark": "grouped-teacher", "job": name, "seed": seed, "lr": lr, "teacher": args.teacher,
           "random": {"dev": random_dev, "score": task_score(random_dev), "trained_here": retrained.is_file()},
           "grouped": {"dev": report.dev, "score": task_score(report.dev), "selection": report.selection, "best_step": report.best_step,
                       "steps_run": report.steps_run, "train_s": report.train_s},
           "baseline_score": board["baseline_score"], "settings": {"max_train": args.max_train, "batch_size": args.batch_size,
                                                                   "max_epochs": args.teacher_epochs, "patience": args.patience,
                                                                   "select_on": "train", "threads": args.threads},
           "wall_s": time.time() - started, **provenance()}
    write_result(path, doc)
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="minilm-l6")
    ap.add_argument("--tasks", default="cola,mrpc")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--teacher-epochs", type=float, default=10.0)  # the scoreboard's settings, as its teachers were trained
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--max-train", type=int, default=8000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results", type=Path, default=BOARD)
    ap.add_argument("--runs", type=Path, default=RUNS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in args.tasks.split(","):
            d = measure(name, seed, args)
            print(f"{name} seed {seed} teacher: grouped {d['grouped']['score']:.4f}, random batches {d['random']['score']:.4f} "
                  f"(B {d['baseline_score']:.4f})", flush=True)


if __name__ == "__main__":
    main()
