"""The logit terms of algorithms.md §4 (masked-LM cross-entropy and the KL to the teacher: :class:`LogitLoss`; the
representation terms are :mod:`bort.training.objectives`), their one weight rule, and the cross-entropy used as ê."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from bort.errors import BortError
from bort.options import opt

# One convention for every stage (docs/design.md): each loss term has its own weight, added; the teacher's term is
# α_kd·τ²·KL(softmax(t/τ) ‖ softmax(s/τ)). Pretraining and fine-tuning differ only in their defaults.
ALPHA_KD = "weight of the term to the teacher's predictions, α_kd·τ²·KL(teacher ‖ student) at temperature τ"
TEMPERATURE = "τ of that term: the KL between softmax(logits/τ) of teacher and student, scaled by τ²"


def check_some_weight(weights: dict[str, float]) -> None:
    """The one rule of every objective (pretraining, extraction's ê, task distillation, compress): some loss weight is
    above 0. ``weights``: each weight by its flag."""
    if not any(weights.values()):
        raise BortError(f"every loss weight is 0: give at least one of {', '.join(weights)}")


@dataclass(frozen=True)
class LogitLoss:
    """L = α_mlm · CE(s, y) + α_kd · τ² · KL(softmax(t/τ) ‖ softmax(s/τ)) over masked positions.

    The defaults are the released Bort code's (0.1, 0.5, τ = 2). ``alpha_kd = 0, alpha_mlm = 1``
    is plain self-supervised masked-LM pretraining.
    """

    alpha_mlm: float = field(default=0.1, metadata=opt("weight of the masked-LM cross-entropy to the gold tokens"))
    alpha_kd: float = field(default=0.5, metadata=opt(ALPHA_KD))
    temperature: float = field(default=2.0, metadata=opt(TEMPERATURE))

    def __post_init__(self) -> None:
        if self.alpha_mlm < 0 or self.alpha_kd < 0:
            raise BortError("--alpha-mlm and --alpha-kd must be 0 or more (e.g. --alpha-mlm 0.1 --alpha-kd 0.5)")
        if self.temperature <= 0:
            raise BortError(f"temperature must be positive, got {self.temperature}")

    @property
    def weights(self) -> dict[str, float]:
        """The weights by their flags (:func:`check_some_weight`)."""
        return {"--alpha-mlm": self.alpha_mlm, "--alpha-kd": self.alpha_kd}

    @property
    def active(self) -> bool:
        """Whether any logit term is on (both weights 0: a representation-only objective, no MLM head)."""
        return self.alpha_mlm + self.alpha_kd > 0

    @property
    def needs_teacher(self) -> bool:
        return self.alpha_kd > 0

    def __call__(
        self, student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None = None, *, count: float | None = None
    ) -> torch.Tensor:
        """Loss over ``[n_masked, V]`` logits with gold ``labels`` of shape ``[n_masked]``.

        Both terms are sums over the masked positions divided by ``count`` (default: their number,
        i.e. the mean). Data-parallel training passes the global count over the world size, so
        the averaged gradients equal those of one process on the whole batch.
        """
        count = float(len(labels)) if count is None else count
        loss = student_logits.new_zeros((), dtype=torch.float32)
        if self.alpha_mlm:
            loss = loss + self.alpha_mlm * F.cross_entropy(student_logits.float(), labels, reduction="sum") / count
        if self.alpha_kd:
            tau = self.temperature
            kl = F.kl_div(
                F.log_softmax(student_logits.float() / tau, dim=-1),
                F.log_softmax(teacher_logits.float() / tau, dim=-1),
                log_target=True,
                reduction="sum",
            )
            loss = loss + self.alpha_kd * tau * tau * kl / count
        return loss


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logprobs: torch.Tensor) -> torch.Tensor:
    """H(p_T, p_S) = −Σ p_T log p_S summed over positions (divide by the count for the mean)."""
    return -(teacher_logprobs.exp() * F.log_softmax(student_logits.float(), dim=-1)).sum()


def soft_kl(student_logits: torch.Tensor, teacher_logprobs: torch.Tensor) -> torch.Tensor:
    """KL(p_T ‖ p_S) = Σ p_T (log p_T − log p_S) summed over positions: H(p_T, p_S) − H(p_T), 0 for p_S = p_T."""
    return (teacher_logprobs.exp() * (teacher_logprobs - F.log_softmax(student_logits.float(), dim=-1))).sum()
