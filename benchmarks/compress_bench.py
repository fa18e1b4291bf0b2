"""Benchmark of `bort compress` (issue 18): MiniLM → a ≥ 4×-faster student on SST-2 (8,000 training examples) and RTE.

    python benchmarks/compress_bench.py [--out benchmarks/out/compress] [--threads 2] [--smoke]

One `bort compress` run (resumable: an interrupted benchmark picks up where it stopped) on the
shared GLUE folders and WikiText-103, then a summary against the issue's goals: ≥ 97% of the
teacher's dev metric at ≥ 4× on the same runtime, ≥ 8× against the teacher on HF eager fp32, the
whole run within 3 hours on 2 cores. Writes OUT/summary.md (for docs/BENCHMARKS.md) and OUT/summary.json.
`--smoke` runs tiny budgets (minutes, not hours) on the built-in corpus and a GLUE subset, to check the script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from common import GLUE, OUT, ROOT

CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "wikitext-103"
TASKS = {"glue/sst2": GLUE / "SST-2", "glue/rte": GLUE / "RTE"}
FULL = ["--corpus", str(CORPUS), "--train-examples", "8000", "--extract-steps", "50", "--epsilon", "8", "--pretrain-steps", "2000",
        "--epochs", "3"]
# Minutes: a few candidates, a few steps, 200 examples per task, one benchmark round.
SMOKE = ["--corpus", "builtin", "--train-examples", "200", "--extract-steps", "2", "--epsilon", "64", "--latency", "flops",
         "--pretrain-steps", "4", "--finetune-steps", "4", "--augment", "1", "--bench-rounds", "1", "--bench-runs", "1", "--bench-warmup", "0"]
GOALS = {"kept": 0.97, "speedup_same_runtime": 4.0, "speedup_vs_eager": 8.0, "hours": 3.0}


def summary(doc: dict, wall_s: float, load: str) -> str:
    """The Markdown for docs/BENCHMARKS.md: per task the quality kept and the speed-ups, the stage wall times, the goals."""
    when = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, load average at the start {load}"
    lines = [f"`bort compress` on {doc['teacher']} → ⟨{doc['arch']}⟩ ({when}); whole run {wall_s / 3600:.2f} h (goal ≤ {GOALS['hours']:g} h).", "",
             "| task | metric | teacher | student | kept | same runtime | vs HF eager |", "|---|---|---:|---:|---:|---:|---:|"]
    for e in doc["tasks"].values():
        lines.append(f"| {e['task']} | {e['metric']} | {e['teacher_metric']:.4f} | {e['student_metric']:.4f} | {100 * e['kept']:.1f}% | "
                     f"{e['speedup_same_runtime']:.1f}× | {e['speedup_vs_eager']:.1f}× |")
    lines += ["", "| stage | wall time |", "|---|---:|", *(f"| {s['name']} | {s['wall_s'] / 60:.1f} min |" for s in doc["stages"])]
    met = {name: {"kept": e["kept"] >= GOALS["kept"], "same_runtime": e["speedup_same_runtime"] >= GOALS["speedup_same_runtime"],
                  "vs_eager": e["speedup_vs_eager"] >= GOALS["speedup_vs_eager"]} for name, e in doc["tasks"].items()}
    lines += ["", "Goals met: " + "; ".join(f"{name}: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in m.items()) for name, m in met.items())
              + f"; within {GOALS['hours']:g} h: {'yes' if wall_s <= GOALS['hours'] * 3600 else 'NO'}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run (or resume) the benchmark's `bort compress` and write its summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT / "compress")
    ap.add_argument("--threads", type=int, default=2, help="OMP threads of the run (the machine has 2 cores)")
    ap.add_argument("--smoke", action="store_true", help="tiny budgets, to check the script")
    args = ap.parse_args()
    missing = [str(p) for p in (*TASKS.values(), *([] if args.smoke else [CORPUS])) if not p.exists()]
    if missing:
        raise SystemExit(f"missing shared data: {', '.join(missing)}")
    run = args.out / "run"
    argv = [sys.executable, "-m", "bort", "compress", "--out", str(run), "--teacher", "minilm-l6", "--task", *TASKS,
            "--data", *map(str, TASKS.values()), *(SMOKE if args.smoke else FULL)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").is_file() else "unknown"
    print(" ".join(argv[2:]), flush=True)
    started = time.time()
    subprocess.run(argv, env=env, check=True)  # its progress lines and bars go straight to the terminal
    doc = json.loads((run / "compress.json").read_text(encoding="utf-8"))
    wall = sum(s["wall_s"] for s in doc["stages"])  # the stages' times (a stage resumed after a kill counts its last session)
    print(f"this call took {time.time() - started:.0f} s")
    (args.out / "summary.json").write_text(json.dumps({"argv": argv[2:], "wall_s": wall, "load": load, "compress": doc}, indent=2), encoding="utf-8")
    (args.out / "summary.md").write_text(summary(doc, wall, load), encoding="utf-8")
    print((args.out / "summary.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
