"""Where fine-tuning chooses its model: a seeded slice of the training data, never the split it is scored on (algorithms.md §4d).

With ``--select-on train`` (the default) a seeded ``--select-fraction`` of the training examples is held out; the best
evaluation and early stopping are decided on it, and the dev split is read once, after training, by the chosen model.
``--select-on dev`` keeps the older practice of choosing on the dev split (the score is then optimistic, and every record
says so); with one's own labelled ``--test-file``, the test file is then the scored split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from bort.errors import BortError
from bort.tasks.spec import Example

SELECT_ON = ("train", "dev")
# "At least a few hundred examples where the training set allows": a 10% slice of RTE (2,490) would be 249 examples, about
# ±3 points of accuracy; the floor is 300, but never more than a fifth of a small training set.
MIN_SELECT = 300


def select_size(n: int, fraction: float) -> int:
    """How many of ``n`` training examples the selection slice holds: ``fraction`` of them, at least ``min(MIN_SELECT, n // 5)``."""
    return max(1, math.ceil(fraction * n), min(MIN_SELECT, n // 5))


def hold_out(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """``(train, select)``: a seeded slice of ``examples`` held out for selection, both in their original order.

    Examples that share a group (a MultiRC question's answers, a ReCoRD query's entities) are held out together, whole groups
    in a seeded order until the slice holds at least :func:`select_size` examples. The slice depends only on ``seed`` and the
    examples, so a teacher and its students given the same data seed hold out the same examples.
    """
    n = len(examples)
    if n < 2:
        raise BortError(f"--select-on train holds out part of the training set, which has {n} example(s); give more, or use --select-on dev")
    units: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        units.setdefault(ex.group or f"#{i}", []).append(i)  # an example without a group is its own unit
    groups = list(units.values())
    k, chosen = select_size(n, fraction), set()
    for g in torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed)).tolist():
        if len(chosen) >= k:
            break
        chosen.update(groups[g])
    if len(chosen) >= n:
        raise BortError(f"--select-fraction {fraction} holds out all {n} training examples; use a smaller fraction")
    return [ex for i, ex in enumerate(examples) if i not in chosen], [ex for i, ex in enumerate(examples) if i in chosen]


__all__ = ["MIN_SELECT", "SELECT_ON", "hold_out", "select_size"]
