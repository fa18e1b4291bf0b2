"""An epoch's training batches: slices of a random permutation, or grouped by length (``--group-by-length``).

Grouped, as Hugging Face Trainer's LengthGroupedSampler makes them (its ``mega_batch_mult``): the permutation is cut into
groups of :data:`MEGABATCH` batches' worth, each group sorted by length and sliced into batches, so each batch is padded
little (random batches of GLUE's training sets compute 1.5-3x their real tokens: BENCHMARKS §1). Unlike Trainer, the epoch's
batches are then shuffled, so that no stretch of 50 steps runs from long inputs to short ones. Fine-tuning's stream
(:func:`bort.tasks.features.task_batch_stream`) and pretraining's sentences (:class:`bort.data.sentences.SentenceStream`)
draw their batches here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

MEGABATCH = 50


def epoch_batches(count: int, batch_size: int, generator: torch.Generator, lengths: Sequence[int] | None = None) -> list[list[int]]:
    """The positions of one epoch's batches of ``count`` inputs, all drawn from ``generator``: consecutive slices of a random
    permutation (the last one smaller where ``batch_size`` does not divide ``count``); or, given the inputs' ``lengths``
    (grouped by length), the slices of each group of :data:`MEGABATCH` batches' worth of the permutation sorted by length
    (longest first, ties in drawn order), the epoch's batches in a random order (the smaller one, where there is one, is the
    last group's shortest)."""
    order = torch.randperm(count, generator=generator).tolist()
    if lengths is None:
        return [order[b : b + batch_size] for b in range(0, count, batch_size)]
    size, batches = MEGABATCH * batch_size, []
    for m in range(0, count, size):
        group = sorted(order[m : m + size], key=lambda i: -lengths[i])
        batches += [group[b : b + batch_size] for b in range(0, len(group), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
