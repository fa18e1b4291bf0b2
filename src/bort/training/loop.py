"""The one training loop: candidate training for ê, teacher-head training, pretraining, fine-tuning and
Agora's rounds all call :func:`train`, and differ only by the model, the loss and the batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel

from bort.errors import BortError, TrainingDiverged
from bort.options import opt


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up and decay, and gradient clipping."""

    lr: float = field(default=5e-4, metadata=opt("peak learning rate", aliases=("--learning_rate",)))
    weight_decay: float = field(default=0.01, metadata=opt("AdamW weight decay, not on biases and LayerNorm", aliases=("--weight_decay",)))
    warmup: float = field(default=0.1, metadata=opt("warm-up fraction of the steps", aliases=("--warmup_ratio",)))
    grad_clip: float = field(default=1.0, metadata=opt("gradient norm clipping; 0 turns it off"))

    def __post_init__(self) -> None:
        rules = {"--lr": (self.lr, self.lr > 0, "above 0"), "--weight-decay": (self.weight_decay, self.weight_decay >= 0, "at least 0"),
                 "--warmup": (self.warmup, 0 <= self.warmup < 1, "a fraction in [0, 1)"), "--grad-clip": (self.grad_clip, self.grad_clip >= 0, "at least 0")}
        for flag, (value, ok, rule) in rules.items():
            if not ok:
                raise BortError(f"{flag} must be {rule}, got {value}")


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig, steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW without weight decay on biases and LayerNorm weights (every 1-D tensor)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    # fused: one kernel per step over all tensors; AdamW's element-wise passes over the ≥ 4× student's 11.7 M embedding weights
    # were a seventh of its step on CPU (docs/design.md, "Training on CPU").
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=fused or None)
    warm = max(1, int(cfg.warmup * steps))

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """bfloat16 for ``--bf16 auto`` where the device supports it (or ``on``, which insists), else None."""
    if mode not in ("auto", "on", "off"):
        raise BortError(f"--bf16 must be auto, on or off, got '{mode}'")
    if mode == "off":
        return None
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
    else:
        ok = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if mode == "on" and not ok:
        raise BortError(f"--bf16 on: this {device.type} has no bfloat16 support; use --bf16 auto or off")
    return torch.bfloat16 if ok else None


@dataclass
class TrainState:
    """The loop's own progress; saved in checkpoints so a resumed run continues exactly."""

    step: int = 0  # optimiser steps done
    min_loss: float = math.inf  # the lowest smoothed loss so far
    elapsed: float = 0.0  # seconds trained, over every resumed session (kept up to date by the caller)
    smooth: float | None = None  # exponential moving average of the step losses (weight 0.1 on the newest)
    start: float | None = None  # the first step's loss
    grad_norm: float | None = None  # the last step's gradient norm, before clipping (for the trackers)
    lr: float | None = None  # the last step's learning rate (of the first parameter group)


def matmul_attention(model: torch.nn.Module) -> None:
    """Switch every Hugging Face model inside ``model`` from SDPA to the plain matrix-product attention ("eager"). On CPU its
    backward is much cheaper than SDPA's flash kernel at the lengths of task inputs (that kernel was a quarter of a step of the
    ≥ 4× student) and its bf16 gradients are as close to fp32 (docs/design.md, "Training on CPU")."""
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and module.config._attn_implementation == "sdpa":
            module.set_attn_implementation("eager")


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[object], torch.Tensor],
    batches: Iterator,
    *,
    steps: int,
    optim: OptimConfig,
    accumulate: int = 1,
    autocast: torch.dtype | None = None,
    state: TrainState | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    on_step: Callable[[TrainState, float], bool | None] | None = None,
    diverge_factor: float = 10.0,
) -> list[float]:
    """Train ``model`` up to ``steps`` optimiser steps of ``loss_fn(batch)``; returns the step losses.

    Each step averages ``accumulate`` micro-batches. ``autocast`` runs the forward passes in that
    dtype (e.g. bfloat16). To resume, pass the saved ``state``, ``optimizer`` and ``scheduler``
    (see :func:`build_optimizer`) and a batch iterator positioned after the consumed batches. On CPU the
    Hugging Face models inside ``model`` train with the matrix-product attention (:func:`matmul_attention`).
    ``on_step(state, loss)`` runs after every step: evaluation, checkpoints, progress; when it returns
    True the loop stops there (early stopping).

    Stops with :class:`TrainingDiverged`, before the weights are touched, when a step's loss is
    NaN/inf or when, after the warm-up, the smoothed loss exceeds both ``diverge_factor`` times its
    lowest value and the first step's loss. Smoothing keeps one hard batch from stopping a run whose
    loss is near zero (fine-tuning), and the first loss is the level a diverging run climbs past.
    """
    if optimizer is None or scheduler is None:
        optimizer, scheduler = build_optimizer(model, optim, steps)
    state = state or TrainState()
    warm = max(1, int(optim.warmup * steps))
    device_type = next(model.parameters()).device.type
    if device_type == "cpu":
        matmul_attention(model)
    model.train()
    losses: list[float] = []
    for step in range(state.step, steps):
        optimizer.zero_grad(set_to_none=True)
        value = 0.0
        for _ in range(accumulate):
            with torch.autocast(device_type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
                loss = loss_fn(next(batches)) / accumulate
            loss.backward()
            value += loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(f"loss became {value} at step {step}; lower the learning rate (now {optim.lr:g})")
        smooth = value if state.smooth is None else 0.9 * state.smooth + 0.1 * value
        start = value if state.start is None else state.start
        if step > warm and smooth > diverge_factor * state.min_loss and smooth > start:
            raise TrainingDiverged(
                f"loss diverged at step {step} (smoothed {smooth:.3g} > {diverge_factor:g}× its minimum {state.min_loss:.3g}); lower the learning rate"
            )
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads)
        if optim.grad_clip:
            torch.nn.utils.clip_grads_with_norm_(model.parameters(), optim.grad_clip, norm)
        state.lr = optimizer.param_groups[0]["lr"]  # the rate this step takes (the scheduler moves it after)
        optimizer.step()
        scheduler.step()
        state.step, state.min_loss, state.smooth, state.start = step + 1, min(state.min_loss, smooth), smooth, start
        state.grad_norm = float(norm)
        losses.append(value)
        if on_step is not None and on_step(state, value):
            break
    model.eval()
    return losses
