"""Which training inputs keep the most of an embedding teacher (issue 14): packed blocks, cut blocks, or sentences.

    python benchmarks/inputs_bench.py [--students fast,d3] [--steps 600] [--out benchmarks/out/inputs]

Every run is `bort pretrain` of one student from the teacher's slices with the objective `bort compress`
uses (last-layer hidden states + sentence embedding, no logit terms), batch 32, on WikiText-103, for the
same number of steps; only the inputs and the learning rate differ:

- ``blocks``: packed 128-token blocks, as TinyBERT and MiniLM distil;
- ``views``: the same blocks cut to log-uniform prefixes of 8 to 128 tokens (``--min-view-len 8``);
- ``sentences``: the corpus's sentences, one per row (``--inputs sentences``).

A sentence batch costs less than a block batch, so equal steps favour the blocks in wall time: the table
gives both. Then every student's sentence embeddings are scored on the STS-B dev set without
fine-tuning (`bort evaluate --embedding`), against the teacher's. Runs go one at a time (2 threads), so
their times compare; each is a resumable folder under OUT, read back once finished.
Writes OUT/summary.json and OUT/summary.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

from common import GLUE, OUT
from repr_bench import CORPUS, embedding_spearman, run

STUDENTS = {"fast": "2,6,384,768", "d3": "3,12,384,1536"}
INPUTS = {"blocks": [], "views": ["--min-view-len", "8"], "sentences": ["--inputs", "sentences"]}
# (inputs, learning rate) per student: the half-depth student's runs cost twice as much, so it gets the three that decide.
VARIANTS = {"fast": [("blocks", "1e-4"), ("views", "1e-4"), ("views", "3e-4"), ("sentences", "1e-4"), ("sentences", "3e-4")],
            "d3": [("views", "1e-4"), ("views", "3e-4"), ("sentences", "3e-4")]}


def one(student: str, inputs: str, lr: str, steps: int, out: Path) -> dict:
    folder = out / f"{student}-{inputs}-lr{lr}"
    record = folder / "bench.json"
    if record.is_file():
        return json.loads(record.read_text())
    every = str(max(1, steps // 4))
    t0 = time.perf_counter()
    run(["pretrain", "--teacher", "minilm-l6", "--corpus", str(CORPUS), "--arch", STUDENTS[student], "--init", "teacher",
         "--alpha-mlm", "0", "--alpha-kd", "0", "--alpha-hidden", "1", "--alpha-embed", "1", *INPUTS[inputs], "--steps", str(steps),
         "--batch-size", "32", "--lr", lr, "--warmup", "0.05", "--eval-every", every, "--save-every", every, "--device", "cpu",
         "--no-progress", "--out", str(folder)], threads=2)
    report = json.loads((folder / "pretrain.json").read_text())
    result = {"student": student, "arch": STUDENTS[student], "inputs": inputs, "lr": lr, "steps": steps, "wall_s": time.perf_counter() - t0,
              "train_s": report["wall_s"], "tokens": report["tokens_seen"], "heldout": report["heldout"], "stsb": embedding_spearman(folder)}
    record.write_text(json.dumps(result, indent=2))
    print(f"{student:5s} {inputs:9s} lr {lr}  {steps} steps {result['train_s']:6.0f} s  STS-B ρ {result['stsb']['spearman']:.4f}", flush=True)
    return result


def markdown(summary: dict) -> str:
    t = summary["teacher_stsb"]["spearman"]
    lines = [f"# Training inputs of representation distillation, {summary['date']}\n",
             f"Machine: {summary['machine']}. {summary['steps']} steps of batch 32, WikiText-103, hidden + embedding terms, teacher slices. "
             f"Teacher STS-B dev Spearman {t:.4f} (100%).\n",
             "| student | inputs | lr | training s | tokens | STS-B ρ (kept) |", "|---|---|---:|---:|---:|---:|"]
    for r in summary["runs"]:
        lines.append(f"| ⟨{r['arch']}⟩ | {r['inputs']} | {r['lr']} | {r['train_s']:.0f} | {r['tokens']:,} | {r['stsb']['spearman']:.4f} "
                     f"({100 * r['stsb']['spearman'] / t:.1f}%) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", default="fast,d3")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--out", type=Path, default=OUT / "inputs")
    args = ap.parse_args()
    if not CORPUS.is_dir() or not GLUE.is_dir():
        raise SystemExit(f"the shared data is not at {CORPUS.parent} / {GLUE}; nothing to benchmark")
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [one(s, i, lr, args.steps, args.out) for s in args.students.split(",") for i, lr in VARIANTS[s]]
    summary = {"date": str(date.today()), "machine": f"{platform.machine()}, {os.cpu_count()} cores, one run at a time, 2 threads",
               "steps": args.steps, "teacher_stsb": embedding_spearman("minilm-l6"), "runs": runs}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    (args.out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
