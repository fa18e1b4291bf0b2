"""Unlabelled inputs for a scoreboard task's `--augment-inputs` (issue 38's transfer-set lever), from the shared data.

    python benchmarks/transfer_inputs.py --task mrpc --out benchmarks/out/transfer/mrpc.jsonl

A user with a small labelled set usually has more inputs of its kind without labels. For MRPC (news sentence pairs) the
shared data holds MRPC's own test pairs (1,725, scored nowhere here) and STS-B's sentence pairs (news, captions,
forums); the teacher labels them in the run. An input sharing a text with the task's scored
dev split is left out (STS-B's MSRpar pairs come from the corpus MRPC was drawn from), so the scored inputs stay unseen.
Writes JSON lines of ``text_a``/``text_b`` (``text`` for one text), in a fixed order: the same file on every machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import GLUE, OUT
from scoreboard import JOBS

from bort.atomic import atomic_write_text
from bort.tasks.registry import read_split

# task → (task, folder, split) whose inputs, labels unused, make its transfer set
# (RTE's pairs, long premises of another kind, are left out: they would double the training time of a run)
SOURCES = {"mrpc": (("glue/mrpc", GLUE / "MRPC", "test"), ("glue/stsb", GLUE / "STS-B", "train"), ("glue/stsb", GLUE / "STS-B", "dev"))}


def transfer_inputs(job: str) -> tuple[list[tuple[str, ...]], dict[str, int]]:
    """The task's transfer inputs (none sharing a text with its dev split, none twice) and how many each source gave."""
    target = JOBS[job]
    scored = {text.strip() for ex in read_split(target.task, target.data, "dev") for text in ex.texts}
    inputs, counts = {}, {}
    for task, folder, split in SOURCES[job]:
        kept = [ex.texts for ex in read_split(task, folder, split) if not scored & {t.strip() for t in ex.texts}]
        counts[f"{task}:{split}"] = len(set(kept) - set(inputs))
        inputs.update(dict.fromkeys(kept))
    return list(inputs), counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(SOURCES), required=True)
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/out/transfer/TASK.jsonl")
    args = ap.parse_args()
    out = args.out or OUT / "transfer" / f"{args.task}.jsonl"
    inputs, counts = transfer_inputs(args.task)
    keys = ("text",) if len(inputs[0]) == 1 else ("text_a", "text_b")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "".join(json.dumps(dict(zip(keys, texts))) + "\n" for texts in inputs))
    print(f"{out}: {len(inputs)} inputs ({', '.join(f'{k} {n}' for k, n in counts.items())})")


if __name__ == "__main__":
    main()
