"""Benchmark of representation distillation (issue 14): which pretraining objective keeps what the teacher knows.

    python benchmarks/repr_bench.py [--budget 270] [--workers 2] [--students d3,fast] [--out benchmarks/out/repr]

For each student (the half-depth ⟨3,12,384,1536⟩ and the ≥ 4×-faster ⟨2,3,384,384⟩), each objective
(logits: today's 0.1·MLM + 0.5·KD against the MLM-headed teacher; hidden; hidden + attention
relations; hidden + attention + embedding) and each init (teacher slices, random), it pretrains
`bort pretrain` on WikiText-103 for the same wall-clock budget: the steps of each (student,
objective) come from timing a few steps of each, interleaved, at the start. Then it scores every
student's sentence embeddings on the STS-B dev set without fine-tuning (`bort evaluate --embedding`).
Every run is its own resumable folder under OUT; a finished one is read back, not redone.
Writes OUT/summary.json and OUT/summary.md. The GLUE fine-tuning of the chosen students runs with
benchmarks/finetune_bench.py (the command is printed at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from common import GLUE, OUT, ROOT

CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "wikitext-103"
STUDENTS = {"d3": "3,12,384,1536", "fast": "2,3,384,384"}
OBJECTIVES = {
    "logits": ["--alpha-mlm", "0.1", "--alpha-kd", "0.5"],
    "hidden": ["--alpha-mlm", "0", "--alpha-kd", "0", "--alpha-hidden", "1"],
    "hidden+attn": ["--alpha-mlm", "0", "--alpha-kd", "0", "--alpha-hidden", "1", "--alpha-attn", "1"],
    "hidden+attn+embed": ["--alpha-mlm", "0", "--alpha-kd", "0", "--alpha-hidden", "1", "--alpha-attn", "1", "--alpha-embed", "1"],
}
LR = {"teacher": "1e-4", "random": "5e-4"}  # teacher slices are fine-tuned gently; a random start needs pretraining's rate
BORT = [sys.executable, "-m", "bort"]


def run(args: list[str], threads: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run(BORT + args, capture_output=True, text=True, env=env)
    if p.returncode:
        raise SystemExit(f"bort {' '.join(args)} failed:\n{p.stderr[-2000:]}")
    return p


def pretrain_args(student: str, objective: str, init: str, teacher: dict[str, str], out: Path, steps: int, batch: int, evals: int) -> list[str]:
    who = teacher["mlm"] if objective == "logits" else teacher["encoder"]
    every = str(max(1, steps // evals))
    return ["pretrain", "--teacher", who, "--corpus", str(CORPUS), "--arch", STUDENTS[student], "--init", init, *OBJECTIVES[objective],
            "--steps", str(steps), "--batch-size", str(batch), "--lr", LR[init], "--warmup", "0.05", "--eval-every", every,
            "--save-every", every, "--bf16", "off", "--device", "cpu", "--no-progress", "--out", str(out)]


def calibrate(students: list[str], teacher: dict[str, str], out: Path, batch: int) -> dict[str, float]:
    """Seconds per step of each (student, objective): a 1-step and a 6-step run each, one after the other, both
    evaluated once at the end; the difference over 5 steps is the training alone."""
    file = out / "calibration.json"
    if file.is_file():
        return json.loads(file.read_text())
    per_step = {}
    for s in students:
        for o in OBJECTIVES:
            spent = []
            for steps in (1, 6):
                t0 = time.perf_counter()
                run(pretrain_args(s, o, "teacher", teacher, out / "calibrate" / f"{s}-{o}-{steps}", steps, batch, evals=1))
                spent.append(time.perf_counter() - t0)
            per_step[f"{s}/{o}"] = (spent[1] - spent[0]) / 5
            print(f"calibration {s}/{o}: {per_step[f'{s}/{o}']:.2f} s/step", flush=True)
    file.write_text(json.dumps(per_step, indent=2))
    return per_step


def embedding_spearman(folder: Path | str) -> dict[str, float]:
    p = run(["evaluate", "--task", "glue/stsb", "--embedding", "--model", str(folder), "--data", str(GLUE / "STS-B")])
    return json.loads(p.stdout.strip().splitlines()[-1])


def one(student: str, objective: str, init: str, teacher: dict[str, str], out: Path, steps: int, batch: int) -> dict:
    folder = out / f"{student}-{objective}-{init}"
    record = folder / "bench.json"
    if record.is_file():
        return json.loads(record.read_text())
    t0 = time.perf_counter()
    run(pretrain_args(student, objective, init, teacher, folder, steps, batch, evals=4))
    wall = time.perf_counter() - t0
    report = json.loads((folder / "pretrain.json").read_text())
    result = {"student": student, "objective": objective, "init": init, "steps": steps, "wall_s": wall, "train_s": report["wall_s"],
              "heldout": report["heldout"], "stsb": embedding_spearman(folder), "folder": str(folder)}
    record.write_text(json.dumps(result, indent=2))
    print(f"{student:5s} {objective:18s} {init:8s} {steps:4d} steps {wall:6.0f} s  STS-B ρ {result['stsb']['spearman']:.4f}  {report['heldout']}",
          flush=True)
    return result


def markdown(summary: dict) -> str:
    t = summary["teacher_stsb"]["spearman"]
    lines = [f"# Representation distillation, {summary['date']}\n", f"Machine: {summary['machine']}. Budget {summary['budget_s']} s of "
             f"training per run, batch {summary['batch']} × 128, WikiText-103. Teacher STS-B dev Spearman {t:.4f} (100%).\n",
             "| student | objective | init | steps | STS-B ρ (kept) | held-out terms |", "|---|---|---|---:|---:|---|"]
    for r in summary["runs"]:
        terms = ", ".join(f"{k} {v:.4g}" for k, v in r["heldout"].items())
        lines.append(f"| {r['student']} | {r['objective']} | {r['init']} | {r['steps']} | {r['stsb']['spearman']:.4f} "
                     f"({100 * r['stsb']['spearman'] / t:.1f}%) | {terms} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=270.0, help="seconds of training per run (the steps are calibrated to it)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="runs in parallel, one thread each")
    ap.add_argument("--students", default="d3,fast")
    ap.add_argument("--inits", default="teacher,random")
    ap.add_argument("--out", type=Path, default=OUT / "repr")
    args = ap.parse_args()
    if not CORPUS.is_dir() or not GLUE.is_dir():
        raise SystemExit(f"the shared data is not at {CORPUS.parent} / {GLUE}; nothing to benchmark")
    args.out.mkdir(parents=True, exist_ok=True)
    students = args.students.split(",")
    teacher = {"encoder": "minilm-l6", "mlm": str(args.out / "minilm-mlm")}
    if not (args.out / "minilm-mlm" / "config.json").is_file():  # the logit objective's MLM head, trained once (not in the budget)
        run(["teacher", "prepare", "--teacher", "minilm-l6", "--corpus", str(CORPUS), "--out", teacher["mlm"]], threads=2)
    per_step = calibrate(students, teacher, args.out, args.batch_size)
    jobs = [(s, o, i) for s in students for o in OBJECTIVES for i in args.inits.split(",")]
    with ThreadPoolExecutor(args.workers) as pool:
        runs = list(pool.map(lambda j: one(*j, teacher, args.out, max(1, round(args.budget / per_step[f"{j[0]}/{j[1]}"])), args.batch_size),
                             jobs))
    summary = {"date": str(date.today()), "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.workers} runs at a time, 1 thread each",
               "budget_s": args.budget, "batch": args.batch_size, "seconds_per_step": per_step,
               "teacher_stsb": embedding_spearman("minilm-l6"), "runs": runs}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    (args.out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
