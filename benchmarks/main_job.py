"""README's main job, measured: `bort compress` on its built-in defaults, as `make compress` runs it (issue 35).

    python benchmarks/main_job.py [--out benchmarks/out/main_job]

The MiniLM teacher, the built-in corpus, no task, the sentence embeddings scored on STS-B dev (the int8 export's beside
the teacher's, kept above chance with its bootstrap interval) and the speed-ups (fixed length, and the STS-B dev sentences
as they come). Writes benchmarks/results/readme/main_job.json, which `benchmarks/render.py` renders into README.md. The
wall time is the whole run's: run it on a quiet machine, into a new --out (an existing finished folder is only re-read).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import GLUE, OUT, RESULTS, provenance, write_result

from bort.compress import CompressConfig, compress


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT / "main_job")
    args = ap.parse_args()
    cfg = CompressConfig(out=args.out, embedding_task="glue/stsb", embedding_data=GLUE / "STS-B", progress=False)
    result = compress(cfg)
    doc = json.loads((args.out / "compress.json").read_text())
    stages = {s["name"]: s["wall_s"] for s in doc["stages"]}
    chosen = next(s for s in doc["stages"] if s["name"] == "extract")["result"]
    write_result(RESULTS / "readme" / "main_job.json", {
        "benchmark": "main_job", "command": "make compress (bort compress --out runs/compress --embedding-task glue/stsb --embedding-data "
                                           "../shared/data/glue/STS-B)",
        "wall_s": sum(v for v in stages.values() if v),  # the stages' own times: the same whether this process ran them all or resumed
        "arch": result.arch, "params": chosen["params"], "teacher_params": chosen["teacher_params"], "bench_seq": cfg.bench.seq,
        "student": {k: v for k, v in result.student.items() if k not in ("teacher_dev", "student_dev", "student_dev_fp32", "texts", "by_batch")},
        "pooled": result.pooled, "stages": stages, **provenance()})


if __name__ == "__main__":
    main()
