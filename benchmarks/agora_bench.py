"""Benchmark of Agora (issue 5): a scarce-data study on the shared GLUE tasks.

    python benchmarks/agora_bench.py --model FOLDER [--tasks rte,mrpc,sst2,cola] [--sizes 32,256] [--seeds 0,1,2]
                                     [--labeller default|teacher]

For each task, training-set size n (a seeded subset of the real training split) and seed: Agora
with the default Θ, each training a fixed number of steps, against plain fine-tuning, the best of
the same Θ grid, where every θ gets an equal share of Agora's total number of training steps.
Every training is a resumable folder under OUT and every finished seed a result.json, so an
interrupted study, or one split over processes by --seeds, picks up where it stopped. Writes
OUT/summary.json and OUT/summary.md (mean and spread over seeds, wall time); with --labeller
teacher, Agora labels its new points with the fine-tuned teacher (the plain runs are shared)
and writes OUT/summary-teacher.*.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from common import FINETUNED, GLUE, GLUE_FOLDERS, OUT

from bort.agora.recipe import AgoraConfig, agora
from bort.agora.thetas import load_agora_space
from bort.atomic import atomic_write_text
from bort.finetune.augment import Augment
from bort.finetune.recipe import FinetuneConfig, finetune, subset
from bort.tasks.registry import get_task, read_split
from bort.training.loop import OptimConfig

RESULT = "result.json"  # the default labeller's; a variant's is result-<labeller>.json


def _steps(folder: Path) -> int:
    return json.loads((folder / "finetune.json").read_text())["steps"]


def one(args: argparse.Namespace, task: str, n: int, seed: int) -> dict:
    """Agora and plain fine-tuning on one seeded subset of n training examples; kept in ``result.json``
    (with its wall times), so a study resumed, or split over processes by seed, reuses it."""
    spec = get_task(f"glue/{task}")
    data, out = GLUE / GLUE_FOLDERS[task], args.out / task / str(n) / str(seed)
    suffix = _suffix(args)
    if (out / f"result{suffix}.json").is_file():
        return json.loads((out / f"result{suffix}.json").read_text())
    labeller = str(FINETUNED / "teacher" / task) if args.labeller == "teacher" else None
    thetas = load_agora_space(args.space)
    steps = args.steps_small if n <= 64 else args.steps  # per training: a fixed budget, not epochs of a growing set
    # One dev evaluation per training, at its end (eval_every past the last step): the study's cost is the trainings.
    base = FinetuneConfig(model=args.model, task=spec.name, data=data, out=out / f"agora{suffix}", steps=steps, train_examples=n, seed=seed,
                          patience=0, eval_every=10**9, max_seq_len=args.max_seq_len, progress=False,
                          augment=Augment(transform=args.transform, infill_model=args.infill_model))
    t0 = time.time()
    result = agora(AgoraConfig(base=base, thetas=tuple(thetas), labeller=labeller))
    agora_s = time.time() - t0
    folders = [Path(r.best_folder).parent / k for r in result.rounds for k in r.scores]
    total_steps = sum(_steps(f) for f in folders)

    train = subset(read_split(spec, data, "train"), n, seed)
    per_theta = max(1, total_steps // len(thetas))
    t0, plain = time.time(), {}
    for theta in thetas:
        cfg = replace(base, out=out / "plain" / theta.slug, steps=per_theta, train_examples=None, batch_size=theta.batch_size, seed=theta.seed,
                      optim=OptimConfig(lr=theta.lr, weight_decay=theta.weight_decay, warmup=theta.warmup))
        plain[theta.slug] = finetune(cfg, train_set=train).dev[spec.metrics[0]]
    plain_s = time.time() - t0
    if suffix and (out / RESULT).is_file():  # the plain trainings are shared with the default variant, which timed them
        plain_s = json.loads((out / RESULT).read_text())["plain_s"]
    record = {"seed": seed, "agora": result.dev[spec.metrics[0]], "plain": max(plain.values()), "agora_steps": total_steps,
              "plain_steps": per_theta * len(thetas), "agora_s": agora_s, "plain_s": plain_s, "rounds": len(result.rounds),
              "new_points": sum(r.new_points for r in result.rounds), "metric": spec.metrics[0],
              "labeller_dev_accuracy": result.rounds[0].labeller_dev_accuracy}
    atomic_write_text(out / f"result{suffix}.json", json.dumps(record, indent=2) + "\n")
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the encoder to fine-tune (e.g. a `bort pretrain` output)")
    ap.add_argument("--tasks", default="rte,mrpc,sst2,cola")
    ap.add_argument("--sizes", default="32,256")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--space", default=None, help="Agora space (default: the 'default' preset)")
    ap.add_argument("--transform", default="mlm-infill")
    ap.add_argument("--labeller", choices=("default", "teacher"), default="default",
                    help="default: round 1's best model; teacher: the fine-tuned teacher of benchmarks/finetune_bench.py "
                         "(benchmarks/out/finetune/teacher/<task>); its Agora runs go to agora-teacher/, its table to summary-teacher.md")
    ap.add_argument("--infill-model", default=str(OUT / "extract" / "minilm-mlm"))
    ap.add_argument("--steps", type=int, default=100, help="steps of each Agora training at n > 64")
    ap.add_argument("--steps-small", type=int, default=40, help="steps of each Agora training at n ≤ 64")
    ap.add_argument("--max-seq-len", type=int, default=128)
    ap.add_argument("--out", type=Path, default=OUT / "agora")
    args = ap.parse_args()
    if not GLUE.is_dir():
        raise SystemExit(f"the shared GLUE data is not at {GLUE}; nothing to benchmark")
    rows = {}
    for task in args.tasks.split(","):
        for n in map(int, args.sizes.split(",")):
            for seed in map(int, args.seeds.split(",")):
                one(args, task, n, seed)
            # Every seed finished so far, also by other processes running other --seeds.
            runs = sorted((json.loads(f.read_text()) for f in (args.out / task / str(n)).glob(f"*/result{_suffix(args)}.json")), key=lambda r: r.get("seed", 0))
            rows[f"{task}/{n}"] = {"runs": runs, **{f"{k}_{stat}": fn([r[k] for r in runs]) for k in ("agora", "plain")
                                                    for stat, fn in (("mean", statistics.mean), ("sd", statistics.pstdev))}}
            write_summary(args, rows)  # after every row: a long study shows its progress
    print((args.out / f"summary{_suffix(args)}.md").read_text())


def _suffix(args: argparse.Namespace) -> str:
    """The file-name suffix of a labeller variant: its Agora folders, results and summary ('' for the default)."""
    return "" if args.labeller == "default" else f"-{args.labeller}"


def write_summary(args: argparse.Namespace, rows: dict) -> None:
    summary = {"date": str(date.today()), "machine": f"{platform.machine()}, {os.cpu_count()} cores", "settings": vars(args) | {"out": str(args.out)},
               "rows": rows}
    (args.out / f"summary{_suffix(args)}.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    lines = ["| task / n | metric | Agora (mean ± sd) | plain, best of Θ (mean ± sd) | Agora − plain | steps (each) | wall Agora / plain (s) "
             "| new points | labeller dev acc. |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, row in rows.items():
        r0 = row["runs"][0]
        lines.append(f"| {key} | {r0['metric']} | {100 * row['agora_mean']:.1f} ± {100 * row['agora_sd']:.1f} | "
                     f"{100 * row['plain_mean']:.1f} ± {100 * row['plain_sd']:.1f} | {100 * (row['agora_mean'] - row['plain_mean']):+.1f} | "
                     f"{statistics.mean(r['agora_steps'] for r in row['runs']):.0f} | "
                     f"{sum(r['agora_s'] for r in row['runs']):.0f} / {sum(r['plain_s'] for r in row['runs']):.0f} | "
                     f"{statistics.mean(r['new_points'] for r in row['runs']):.0f} | "
                     f"{100 * statistics.mean(r.get('labeller_dev_accuracy') or 0 for r in row['runs']):.1f} |")
    (args.out / f"summary{_suffix(args)}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
