"""Benchmark of `bort finetune` (issue 4): the minilm-l6 teacher against students extracted and
pretrained from it, fine-tuned on the shared GLUE tasks; dev metrics, fine-tuning time, inference time.

    python benchmarks/finetune_bench.py [--model NAME=FOLDER ...] [--tasks cola,sst2,mrpc,stsb,rte]

The first --model is the reference (default: the teacher). Every (task, model) fine-tuning is a
resumable `bort finetune` run under OUT/<model>/<task>, so an interrupted benchmark picks up where
it stopped. Inference is timed per task over the whole dev set, and at batch 1 × 128 tokens,
the models interleaved (A B A B …) so the ratios see the same machine load. Writes OUT/summary.json
and OUT/summary.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch
from common import FINETUNED, GLUE, GLUE_FOLDERS, OUT, glue_score

from bort.finetune.recipe import FinetuneConfig, finetune
from bort.models.loading import load_tokenizer
from bort.tasks import heads
from bort.tasks.features import encode
from bort.tasks.registry import get_task, read_split
from bort.tasks.scoring import outputs
from bort.training.loop import OptimConfig

DEFAULT_MODELS = [
    "teacher=minilm-l6",
    f"student-d3={OUT}/pretrain/kd_d3_teacher_init",
    f"student-w={OUT}/pretrain/kd_teacher_init",
]


def time_dev(folder: Path, task: str, threads: int) -> float:
    """Seconds to predict the whole dev set, fp32, batch 32."""
    spec = get_task(f"glue/{task}")
    model, tok = heads.load(folder, spec), load_tokenizer(folder)
    feats = encode(spec, read_split(spec, GLUE / GLUE_FOLDERS[task], "dev"), tok, model.config.bort_max_seq_len)
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    outputs(model, feats, batch_size=32, pad_id=tok.pad_token_id)
    return time.perf_counter() - t0


@torch.inference_mode()
def latency_ms(folder: Path, task: str, threads: int, runs: int = 20) -> list[float]:
    """Batch 1 × 128 tokens forward times of a fine-tuned classifier, fp32, after 3 warm-ups."""
    model = heads.load(folder, get_task(f"glue/{task}"))
    torch.set_num_threads(threads)
    ids = torch.randint(1000, 2000, (1, 128))
    for _ in range(3):
        model(input_ids=ids)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model(input_ids=ids)
        times.append(1000 * (time.perf_counter() - t0))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="NAME=FOLDER (repeat); the first is the reference")
    ap.add_argument("--tasks", default="cola,sst2,mrpc,stsb,rte")
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--max-train", type=int, default=1000, help="train on a seeded subset of at most this many examples per task")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the steadiest on a shared machine)")
    ap.add_argument("--out", type=Path, default=FINETUNED)
    args = ap.parse_args()
    if not GLUE.is_dir():
        raise SystemExit(f"the shared GLUE data is not at {GLUE}; nothing to benchmark")
    models = dict(m.split("=", 1) for m in (args.model or DEFAULT_MODELS))
    tasks = args.tasks.split(",")
    torch.set_num_threads(args.threads)

    results: dict = {"date": str(date.today()), "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}",
                     "settings": vars(args) | {"out": str(args.out)}, "models": {}, "tasks": {}}
    for name, source in models.items():
        results["models"][name] = {"source": source}
    for task in tasks:  # each task: every model in turn, so the time columns share the machine's state
        results["tasks"][task] = {}
        for name, source in models.items():
            cfg = FinetuneConfig(model=source, task=f"glue/{task}", data=GLUE / GLUE_FOLDERS[task], out=args.out / name / task,
                                 epochs=args.epochs, train_examples=args.max_train,
                                 batch_size=args.batch_size, optim=OptimConfig(lr=args.lr, weight_decay=0.01, warmup=0.1), progress=False)
            report = finetune(cfg)
            results["tasks"][task][name] = {"dev": report.dev, "glue": glue_score(report.dev), "train_s": report.train_s,
                                            "steps": report.steps, "best_step": report.best_step}
            print(f"{task:5s} {name:12s} {report.dev} train {report.train_s:.0f} s", flush=True)
        # Dev-set inference, interleaved twice; the median of the two is kept.
        for name in models:
            times = []
            for _ in range(2):
                times.append(time_dev(args.out / name / task, task, args.threads))
            results["tasks"][task][name]["dev_infer_s"] = statistics.median(times)
    for name in models:  # batch-1 latency, interleaved over models
        folder = args.out / name / tasks[-1]
        results["models"][name]["params"] = sum(p.numel() for p in heads.load(folder, get_task(f"glue/{tasks[-1]}")).parameters())
    lat: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(3):
        for name in models:
            lat[name] += latency_ms(args.out / name / tasks[-1], tasks[-1], args.threads)
    for name in models:
        results["models"][name]["latency_ms_b1_s128"] = statistics.median(lat[name])
        results["models"][name]["glue_avg"] = statistics.mean(results["tasks"][t][name]["glue"] for t in tasks)
        results["models"][name]["train_s_total"] = sum(results["tasks"][t][name]["train_s"] for t in tasks)
    (args.out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "summary.md").write_text(markdown(results, list(models), tasks))
    print((args.out / "summary.md").read_text())


def markdown(r: dict, names: list[str], tasks: list[str]) -> str:
    ref = names[0]
    head = "| task | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names) + "\n"
    rows = []
    for t in tasks:
        rows.append(f"| {t} ({', '.join(r['tasks'][t][ref]['dev'])}) | " + " | ".join(
            " / ".join(f"{100 * v:.1f}" for v in r["tasks"][t][n]["dev"].values()) for n in names) + " |")
    m = r["models"]
    rows.append("| **GLUE average** | " + " | ".join(f"**{m[n]['glue_avg']:.1f}** ({100 * m[n]['glue_avg'] / m[ref]['glue_avg']:.0f}%)" for n in names) + " |")
    rows.append("| fine-tuning time, all tasks (s) | " + " | ".join(f"{m[n]['train_s_total']:.0f} ({m[n]['train_s_total'] / m[ref]['train_s_total']:.2f}×)" for n in names) + " |")
    dev_total = {n: sum(r["tasks"][t][n]["dev_infer_s"] for t in tasks) for n in names}
    rows.append("| dev-set inference, all tasks (s) | " + " | ".join(f"{dev_total[n]:.1f} ({dev_total[n] / dev_total[ref]:.2f}×)" for n in names) + " |")
    rows.append("| latency, batch 1 × 128 (ms) | " + " | ".join(f"{m[n]['latency_ms_b1_s128']:.1f} ({m[n]['latency_ms_b1_s128'] / m[ref]['latency_ms_b1_s128']:.2f}×)" for n in names) + " |")
    rows.append("| parameters (M) | " + " | ".join(f"{m[n]['params'] / 1e6:.1f}" for n in names) + " |")
    return head + "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
