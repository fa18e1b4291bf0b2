"""From task examples to model inputs: tokenised features, label ids, padded batches, batch streams.

A feature is one example's token ids (``[choices][tokens]`` for multiple choice) and its target.
Batches are padded to their own longest row (dynamic padding), and the training stream is a pure
function of its seed and start, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from bort.data.batching import epoch_batches
from bort.data.tokens import tokenize
from bort.tasks.registry import Example, TaskSpec


@dataclass(frozen=True)
class Feature:
    """One tokenised example. For multiple choice, each field holds one row per choice."""

    input_ids: tuple
    token_type_ids: tuple
    target: int | float | None  # label index, regression score, or None (unlabelled)
    teacher: tuple[float, ...] | None = None  # task distillation: the teacher's log-probabilities (regression: its score)

    @property
    def multiple_choice(self) -> bool:
        return isinstance(self.input_ids[0], (list, tuple))

    @property
    def rows(self) -> tuple:
        """The token-id rows fed to the encoder: one, or one per choice."""
        return self.input_ids if self.multiple_choice else (self.input_ids,)

    @property
    def type_rows(self) -> tuple:
        """The token-type rows beside :attr:`rows`."""
        return self.token_type_ids if self.multiple_choice else (self.token_type_ids,)


def target(task: TaskSpec, label: str | float | None) -> int | float | None:
    """The training target of a label name: its index, the score itself (regression), or None."""
    if label is None or task.kind == "regression":
        return label
    return task.labels.index(label)


def _encode_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, ...]], max_len: int) -> tuple[list, list]:
    first = [p[0] for p in pairs]
    second = [p[1] for p in pairs] if len(pairs[0]) > 1 else None
    enc = tokenize(tokenizer, first, second, max_len=max_len, return_token_type_ids=True)
    return enc["input_ids"], enc["token_type_ids"]


def encode(task: TaskSpec, examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_len: int) -> list[Feature]:
    """Tokenise the examples (pairs truncated longest-first to ``max_len`` tokens)."""
    if task.kind == "multiple_choice":
        width = len(examples[0].choices)
        flat = [choice for ex in examples for choice in ex.choices]
        ids, types = _encode_pairs(tokenizer, flat, max_len)
        rows = range(0, len(flat), width)
        return [
            Feature(tuple(ids[r : r + width]), tuple(types[r : r + width]), target(task, ex.label))
            for r, ex in zip(rows, examples)
        ]
    ids, types = _encode_pairs(tokenizer, [ex.texts for ex in examples], max_len)
    return [Feature(tuple(i), tuple(t), target(task, ex.label)) for i, t, ex in zip(ids, types, examples)]


def collate(features: Sequence[Feature], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest row of the batch; ``labels`` (``teacher``) only where every feature has a target (teacher output)."""
    mc = features[0].multiple_choice
    rows = [r for f in features for r in f.rows]
    types = [r for f in features for r in f.type_rows]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    tt = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, t) in enumerate(zip(rows, types)):
        ids[i, : len(r)], tt[i, : len(t)], mask[i, : len(r)] = torch.tensor(r), torch.tensor(t), 1
    batch = {"input_ids": ids, "token_type_ids": tt, "attention_mask": mask}
    if mc:
        batch = {k: v.view(len(features), -1, width) for k, v in batch.items()}
    if all(f.target is not None for f in features):
        dtype = torch.float if isinstance(features[0].target, float) else torch.long
        batch["labels"] = torch.tensor([f.target for f in features], dtype=dtype)
    if all(f.teacher is not None for f in features):
        batch["teacher"] = torch.tensor([f.teacher for f in features])
    return batch


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one pass over ``n`` examples (the last one may be smaller)."""
    return -(-n // batch_size)


def task_batch_stream(features: Sequence[Feature], batch_size: int, pad_id: int, seed: int, *, start: int = 0,
                      group_by_length: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Endless shuffled training batches; epoch ``e`` is drawn by a generator seeded ``seed + e`` (``group_by_length``: of
    inputs of similar lengths, :func:`~bort.data.batching.epoch_batches`). Each batch's ``index`` holds its features'
    positions in ``features`` (where stored teacher views are read).

    ``start`` skips that many batches (for resuming) without computing them.
    """
    per_epoch = steps_per_epoch(len(features), batch_size)
    lengths = [max(len(r) for r in f.rows) for f in features] if group_by_length else None
    epoch, offset = divmod(start, per_epoch)
    while True:
        batches = epoch_batches(len(features), batch_size, torch.Generator().manual_seed(seed + epoch), lengths)
        for chosen in batches[offset:]:
            yield {**collate([features[i] for i in chosen], pad_id), "index": torch.tensor(chosen)}
        epoch, offset = epoch + 1, 0


def eval_batches(features: Sequence[Feature], batch_size: int, pad_id: int) -> Iterator[dict[str, torch.Tensor]]:
    """The features in order, in padded batches (for evaluation and prediction)."""
    for b in range(0, len(features), batch_size):
        yield collate(features[b : b + batch_size], pad_id)
