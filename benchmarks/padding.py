"""The tokens a training epoch computes, random batches against batches grouped by length (`--group-by-length`).

    python benchmarks/padding.py [--tasks cola,sst2,mrpc,stsb,rte,qnli,pros_cons] [--batch-size 32]

For each scoreboard task, its training set as the scoreboard trains on it (a seeded 8,000 at most, seed 0) through
MiniLM's tokenizer (128 tokens at most), one epoch of `bort finetune`'s own training stream with and without grouping:
the padded tokens of its batches (what the encoder computes) against the real ones. Writes
benchmarks/results/training/padding.json, rendered in docs/BENCHMARKS.md (the ``padding`` block).
"""

from __future__ import annotations

import argparse
import itertools

from common import RESULTS, provenance, write_result
from scoreboard import JOBS

from bort.finetune.recipe import subset
from bort.models.loading import load_tokenizer, resolve_model_path
from bort.tasks.features import encode, steps_per_epoch, task_batch_stream
from bort.tasks.source import open_task


def epoch_tokens(features, batch_size: int, pad_id: int, group_by_length: bool) -> int:
    """The padded tokens of one epoch's batches (seed 0)."""
    stream = task_batch_stream(features, batch_size, pad_id, 0, group_by_length=group_by_length)
    return sum(b["input_ids"].numel() for b in itertools.islice(stream, steps_per_epoch(len(features), batch_size)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(JOBS))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-train", type=int, default=8000)
    args = ap.parse_args()
    tokenizer = load_tokenizer(resolve_model_path("minilm-l6"))
    rows = []
    for name in args.tasks.split(","):
        job = JOBS[name]
        data = open_task(job.task, job.data, job.own)
        features = encode(data.spec, subset(data.split("train"), args.max_train, 0), tokenizer, 128)
        real = sum(len(f.input_ids) for f in features)
        random_, grouped = (epoch_tokens(features, args.batch_size, tokenizer.pad_token_id, g) for g in (False, True))
        rows.append({"job": name, "examples": len(features), "mean_tokens": real / len(features), "real_tokens": real,
                     "random_tokens": random_, "grouped_tokens": grouped, "random_over_real": random_ / real, "grouped_over_real": grouped / real})
        print(f"{name}: random {random_ / real:.2f}× the real tokens, grouped {grouped / real:.2f}×", flush=True)
    write_result(RESULTS / "training" / "padding.json", {"benchmark": "padding", "tokenizer": "all-MiniLM-L6-v2", "max_seq_len": 128,
                                                          "batch_size": args.batch_size, "max_train": args.max_train, "seed": 0, "tasks": rows,
                                                          **provenance()})


if __name__ == "__main__":
    main()
