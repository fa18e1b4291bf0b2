"""Benchmark of fast CPU inference (issue 6): `bort bench` on the seed's shapes, and on fine-tuned models.

    python benchmarks/inference_bench.py [--part headline|finetuned|all] [--threads 1] [--batches 1,8]
                                         [--tasks cola,sst2,mrpc,stsb,rte] [--students NAME,…]

1. headline: random-weight encoders at batch 1 and 8, sequence 128: BERT-large ⟨24,16,1024,4096⟩, Bort
   in both readings ⟨4,8,1024,768⟩ and ⟨4,8,768,1024⟩, BERT-base ⟨12,12,768,3072⟩, on every runtime.
2./3. finetuned: for each task with a fine-tuned student and teacher (benchmarks/out/finetune/{STUDENT…,teacher}/<task>,
   from benchmarks/finetune_bench.py), latency at batch 1 × 128 on every runtime (one interleaved `bort bench` run
   per task), and the dev metric of PyTorch fp32, ONNX fp32 and ONNX int8, read from the exports that run made.

Writes benchmarks/out/inference/{headline-b1,headline-b8,<task>}/bench.{json,md,png} and summary.json / summary.md.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import date
from pathlib import Path

from common import FINETUNED, GLUE, GLUE_FOLDERS, ROOT
from common import OUT as BENCH_OUT

from bort.arch import Arch
from bort.atomic import atomic_write_text
from bort.bench.recipe import BenchConfig, bench
from bort.models.loading import model_dir
from bort.models.runtime import load_predictor
from bort.predict.recipe import PredictConfig, predict

OUT = BENCH_OUT / "inference"
SHAPES = {"BERT-large": "24,16,1024,4096", "Bort (released)": "4,8,1024,768", "Bort (paper)": "4,8,768,1024", "BERT-base": "12,12,768,3072"}


def headline(out: Path, threads: int, batches: list[int]) -> dict[str, list[dict]]:
    """One interleaved run per batch size; batch 1 gets more samples (its calls are short and noisier)."""
    results = {}
    for batch in batches:
        rounds, runs = (8, 3) if batch == 1 else (3, 2)
        doc = bench(BenchConfig(out=out / f"headline-b{batch}", archs=tuple(Arch.parse(a) for a in SHAPES.values()), batches=(batch,), seq=128,
                                threads=threads, warmup=1, rounds=rounds, runs=runs))
        results[str(batch)] = doc.results
    return results


def _dev(folder: str | Path, task: str, threads: int) -> dict[str, float]:
    _, metrics = predict(load_predictor(folder, threads=threads), PredictConfig(input=str(GLUE / GLUE_FOLDERS[task]), task=f"glue/{task}", batch_size=32))
    return {k: 100 * v for k, v in metrics.items()}


def finetuned(out: Path, tasks: list[str], students: list[str], threads: int, rounds: int) -> list[dict]:
    rows = []
    for task in tasks:
        models = {name: FINETUNED / name / task for name in [*students, "teacher"]}
        missing = [str(p) for p in models.values() if not (model_dir(p) / "config.json").is_file()]  # a run folder's model/
        if missing or not (GLUE / GLUE_FOLDERS[task]).is_dir():
            print(f"skip {task}: missing {', '.join(missing) or GLUE / GLUE_FOLDERS[task]}")
            continue
        doc = bench(BenchConfig(out=out / task, models=tuple(str(p) for p in models.values()), batches=(1,), seq=128, threads=threads,
                                warmup=2, rounds=rounds, runs=3))
        for who, info in zip(models, doc.models):
            latency = {r["runtime"]: r["median_ms"] for r in doc.results if r["model"] == info["name"]}
            dev = {"torch-fp32": _dev(models[who], task, threads)}
            dev.update({rt: _dev(info[rt]["folder"], task, threads) for rt in ("onnx-fp32", "onnx-int8")})
            rows.append({"task": task, "model": who, "arch": info["arch"], "params": info["params"], "latency_ms": latency, "dev": dev})
            print(json.dumps(rows[-1]))
    return rows


def _metric(d: dict[str, float]) -> str:
    return "/".join(f"{v:.1f}" for v in d.values())


def markdown(summary: dict) -> str:
    lines = [f"# Inference benchmark ({summary['date']}, {summary['threads']} thread(s))\n"]
    if summary.get("headline"):
        res = [r for batch in sorted(summary["headline"], key=int) for r in summary["headline"][batch]]
        large = {(r["runtime"], r["batch"]): r["median_ms"] for r in res if r["model"] == f"random ⟨{SHAPES['BERT-large']}⟩"}
        lines += ["| shape | batch | runtime | median ms | p90 ms | speed-up vs BERT-large |", "|---|---:|---|---:|---:|---:|"]
        for r in res:
            name = next(k for k, v in SHAPES.items() if r["model"] == f"random ⟨{v}⟩")
            lines.append(f"| {name} ⟨{SHAPES[name]}⟩ | {r['batch']} | {r['runtime']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
                         f"{large[(r['runtime'], r['batch'])] / r['median_ms']:.2f}× |")
    if summary.get("finetuned"):
        lines += ["\n| task | model | ξ | torch-fp32 ms | fastest | ms | speed-up | dev torch-fp32 | dev onnx-fp32 | dev onnx-int8 |",
                  "|---|---|---|---:|---|---:|---:|---:|---:|---:|"]
        for r in summary["finetuned"]:
            lat = r["latency_ms"]
            best = min(lat, key=lat.get)
            lines.append(f"| {r['task']} | {r['model']} | ⟨{r['arch']}⟩ | {lat['torch-fp32']:.2f} | {best} | {lat[best]:.2f} | "
                         f"{lat['torch-fp32'] / lat[best]:.2f}× | {_metric(r['dev']['torch-fp32'])} | {_metric(r['dev']['onnx-fp32'])} | "
                         f"{_metric(r['dev']['onnx-int8'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("headline", "finetuned", "all"), default="all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", default="1,8", help="headline batch sizes, each its own run (default 1,8)")
    ap.add_argument("--tasks", default="cola,sst2,mrpc,stsb,rte")
    ap.add_argument("--students", default="student", help="the students' folders under benchmarks/out/finetune, comma-separated (default student)")
    ap.add_argument("--rounds", type=int, default=5, help="finetuned: interleaved rounds of 3 timed calls per runtime (default 5)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT.relative_to(ROOT)})")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    summary_file = args.out / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    summary.update({"date": date.today().isoformat(), "threads": args.threads})
    if args.part in ("headline", "all"):
        summary["headline"] = {**summary.get("headline", {}), **headline(args.out, args.threads, [int(b) for b in args.batches.split(",")])}
    if args.part in ("finetuned", "all"):
        done = [r for r in summary.get("finetuned", []) if r["task"] not in args.tasks.split(",")]  # other tasks' rows stay
        summary["finetuned"] = done + finetuned(args.out, args.tasks.split(","), args.students.split(","), args.threads, args.rounds)
    atomic_write_text(summary_file, json.dumps(summary, indent=2) + "\n")
    atomic_write_text(args.out / "summary.md", markdown(summary))
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
