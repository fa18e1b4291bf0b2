"""Dynamic BERT-style masking (algorithms.md §4) and reproducible batch streams.

15% of the non-special tokens are chosen; of those 80% become the mask token, 10% a random
token, and 10% stay unchanged. Every random draw comes from an explicit ``torch.Generator``, so a
stream is a pure function of its seed: the property that lets a resumed search reproduce ê.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from transformers import PreTrainedTokenizerBase


@dataclass
class MaskedBatch:
    """Masked inputs and the gold tokens; ``positions`` marks the masked positions."""

    input_ids: torch.Tensor
    labels: torch.Tensor  # gold token at masked positions, -100 elsewhere

    @property
    def positions(self) -> torch.Tensor:
        return self.labels != -100

    @property
    def targets(self) -> torch.Tensor:
        return self.labels[self.positions]

    def to(self, device: torch.device | str) -> "MaskedBatch":
        return MaskedBatch(self.input_ids.to(device), self.labels.to(device))


def mask_tokens(ids: torch.Tensor, tokenizer: PreTrainedTokenizerBase, generator: torch.Generator, *, prob: float = 0.15) -> MaskedBatch:
    """Mask a batch of token ids; at least one position per batch is always masked."""
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=ids.dtype)
    candidates = ~torch.isin(ids, special)
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & candidates
    if not chosen.any():
        flat = candidates.flatten().nonzero().squeeze(1)
        chosen.view(-1)[flat[torch.randint(len(flat), (1,), generator=generator)]] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    roll = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    random_slot = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[random_slot] = torch.randint(len(tokenizer), ids.shape, generator=generator)[random_slot]
    return MaskedBatch(inputs, labels)


def masked_batch_stream(blocks: torch.Tensor, tokenizer: PreTrainedTokenizerBase, batch_size: int, seed: int, *, start: int = 0) -> Iterator[MaskedBatch]:
    """An endless stream of freshly masked, shuffled batches; a pure function of ``seed``.

    ``start`` skips that many batches (for resuming) without changing what follows.
    """
    order_gen = torch.Generator().manual_seed(seed)
    mask_gen = torch.Generator().manual_seed(seed + 1)
    n = len(blocks)
    step = 0
    while True:
        perm = torch.randperm(n, generator=order_gen)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            batch = mask_tokens(blocks[perm[i : i + batch_size]], tokenizer, mask_gen)
            if step >= start:
                yield batch
            step += 1


def fixed_masked_batches(blocks: torch.Tensor, tokenizer: PreTrainedTokenizerBase, *, batch_size: int, max_sequences: int, seed: int) -> list[MaskedBatch]:
    """The held-out evaluation batches: the same blocks and masks for every candidate."""
    gen = torch.Generator().manual_seed(seed)
    blocks = blocks[:max_sequences]
    return [mask_tokens(blocks[i : i + batch_size], tokenizer, gen) for i in range(0, len(blocks), batch_size)]
