"""Candidate student shapes at the speed of real inputs (issue 38's deeper-narrower lever), before any is trained.

    python benchmarks/shape_speed.py --tasks mrpc,cola --shapes 2,12,384,768 3,6,384,192 4,6,288,192

Random-weight encoders of the teacher's family (`bort bench --arch … --teacher minilm-l6 --texts`), each exported to int8
ONNX and timed beside the teacher's own shape in `bort bench`'s interleaved rounds, one thread: at a fixed 128 tokens
(batch 1) and on the task's first 256 dev texts as they come, read through the teacher's tokenizer (batch 1 and 32).
Weights do not change the time, so a shape's speed-up here is the one its trained student will have, up to the task head.
Writes benchmarks/results/shapes/<task>.json, which `benchmarks/render.py` renders into docs/BENCHMARKS.md (the
``shapes`` block); compare shapes within one file (one run), as ratios.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import OUT, RESULTS, provenance, write_result
from scoreboard import JOBS

from bort.arch import Arch
from bort.bench.recipe import BenchConfig, bench
from bort.tasks.source import open_task

TEACHER = "minilm-l6"
TEACHER_SHAPE = Arch.parse("6,12,384,1536")  # all-MiniLM-L6-v2's own ⟨D,A,H,I⟩: the reference every speed-up divides
BATCHES = (1, 32)


def _texts(job, out: Path, n: int) -> Path:
    """The task's first ``n`` dev inputs as JSON lines (``text``, ``text_pair``), as `bort bench --texts` reads them."""
    dev = open_task(job.task, job.data, job.own).split("dev")[:n]
    path = out / f"{job.name}-texts.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = ("text", "text_pair")
    path.write_text("".join(json.dumps(dict(zip(keys, ex.texts))) + "\n" for ex in dev), encoding="utf-8")
    return path


def measure(job, shapes: list[Arch], args) -> dict:
    """One `bort bench` run of the teacher's shape and ``shapes`` on ``job``'s dev texts; the result document."""
    texts = _texts(job, args.out, args.max_texts)
    result = bench(BenchConfig(out=args.out / job.name, teacher=TEACHER, archs=(TEACHER_SHAPE, *shapes), runtimes=("onnx-int8",), batches=(1,),
                               seq=128, threads=1, rounds=args.rounds, texts=texts, text_batches=BATCHES, max_texts=args.max_texts,
                               progress=False))
    fixed = {r["model"]: r for r in result.results}
    real = {(r["model"], r["batch"]): r for r in result.real}
    rows = [{"arch": m["arch"], "params": m["params"], "fixed_128": {"ms": fixed[m["name"]]["median_ms"], "speedup": fixed[m["name"]]["speedup_vs_first"]},
             "real": {str(b): {"ms_per_seq": real[m["name"], b]["ms_per_sequence"], "speedup": real[m["name"], b]["speedup_vs_first"],
                               "mean_tokens": real[m["name"], b]["mean_tokens"]} for b in BATCHES}}
            for m in result.models]
    return {"benchmark": "shapes", "job": job.name, "task": job.task or f"own:{job.name}", "teacher": TEACHER, "teacher_arch": TEACHER_SHAPE.key,
            "runtime": "onnx-int8", "threads": 1, "rounds": args.rounds, "texts": result.texts["count"], "shapes": rows, **provenance()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="mrpc,cola", help=f"comma-separated, of {', '.join(JOBS)}")
    ap.add_argument("--shapes", nargs="+", type=Arch.parse, required=True, metavar="D,A,H,I")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--max-texts", type=int, default=256)
    ap.add_argument("--out", type=Path, default=OUT / "shape_speed")
    args = ap.parse_args()
    for name in args.tasks.split(","):
        doc = measure(JOBS[name], args.shapes, args)
        write_result(RESULTS / "shapes" / f"{name}.json", doc)
        print(name, ", ".join(f"⟨{r['arch']}⟩ {r['real']['1']['speedup']:.2f}×" for r in doc["shapes"]), flush=True)


if __name__ == "__main__":
    main()
