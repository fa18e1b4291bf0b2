"""Held-out masked-LM metrics: accuracy against the gold tokens, and H(p_T, p_S) and KL(p_T ‖ p_S) against a teacher."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from bort.data.masking import MaskedBatch
from bort.models.student import masked_logits
from bort.training.losses import LogitLoss, soft_cross_entropy, soft_kl


@torch.inference_mode()
def teacher_logprobs(teacher: PreTrainedModel, batches: list[MaskedBatch]) -> list[torch.Tensor]:
    """The teacher's log-probabilities at the masked positions of each batch (computed once)."""
    device = next(teacher.parameters()).device
    return [F.log_softmax(masked_logits(teacher, b.input_ids.to(device), b.positions.to(device)).float(), dim=-1).cpu() for b in batches]


@torch.inference_mode()
def evaluate_mlm(model: PreTrainedModel, batches: list[MaskedBatch], teacher_lp: list[torch.Tensor] | None = None,
                 loss: LogitLoss | None = None) -> dict[str, float]:
    """``mlm_accuracy`` over all masked positions; ``kd_ce`` = mean H(p_T, p_S) and ``kd_kl`` = mean KL(p_T ‖ p_S) if teacher
    log-probs are given; ``logit_loss``, the training objective's logit terms over every masked position, if ``loss`` is."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct, count, ce, kl, total = 0, 0, 0.0, 0.0, 0.0
    for i, batch in enumerate(batches):
        logits = masked_logits(model, batch.input_ids.to(device), batch.positions.to(device))
        correct += int((logits.argmax(-1).cpu() == batch.targets).sum())
        count += int(batch.targets.numel())
        if teacher_lp is not None:
            ce += float(soft_cross_entropy(logits.cpu(), teacher_lp[i]))
            kl += float(soft_kl(logits.cpu(), teacher_lp[i]))
        if loss is not None:  # sums (count 1), divided once below; log-probabilities stand for logits (softmax(lp/τ) = softmax(z/τ))
            total += float(loss(logits.cpu(), batch.targets, None if teacher_lp is None else teacher_lp[i], count=1.0))
    model.train(was_training)
    metrics = {"mlm_accuracy": correct / count, **({"logit_loss": total / count} if loss is not None else {})}
    if teacher_lp is not None:
        metrics["kd_ce"] = ce / count
        metrics["kd_kl"] = kl / count
    return metrics
