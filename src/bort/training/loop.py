"""The one training loop: candidate training for ê, teacher-head training, and (later) pretraining
and fine-tuning all call :func:`train`, and differ only by the model, the loss and the batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from bort.errors import BortError, TrainingDiverged


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up and decay, and gradient clipping."""

    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of the steps
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.warmup < 1 or self.grad_clip < 0:
            raise BortError(f"invalid optimiser settings {self}: need lr > 0, weight decay ≥ 0, 0 ≤ warm-up < 1")


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig, steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW without weight decay on biases and LayerNorm weights (every 1-D tensor)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    warm = max(1, int(cfg.warmup * steps))

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[object], torch.Tensor],
    batches: Iterator,
    *,
    steps: int,
    optim: OptimConfig,
    diverge_factor: float = 10.0,
) -> list[float]:
    """Train ``model`` for ``steps`` optimiser steps of ``loss_fn(batch)``; returns the losses.

    Stops with :class:`TrainingDiverged` when the loss is NaN/inf, or, after the warm-up, exceeds
    ``diverge_factor`` times the lowest loss seen so far.
    """
    optimizer, scheduler = build_optimizer(model, optim, steps)
    warm = max(1, int(optim.warmup * steps))
    model.train()
    losses: list[float] = []
    for step in range(steps):
        loss = loss_fn(next(batches))
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(f"loss became {value} at step {step}; lower the learning rate (now {optim.lr:g})")
        if step > warm and value > diverge_factor * min(losses):
            raise TrainingDiverged(f"loss diverged at step {step} ({value:.3g} > {diverge_factor:g}× its minimum {min(losses):.3g}); lower the learning rate")
        losses.append(value)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
        optimizer.step()
        scheduler.step()
    model.eval()
    return losses
