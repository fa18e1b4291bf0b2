"""Agora's hyperparameter sets Θ (algorithms.md §6): a preset or a YAML file, and the pruning of step 5."""

from __future__ import annotations

from bort.training.hparams import FIELDS, Theta, load_thetas

# The default: a small grid that this 2-core machine runs in minutes (4 sets: 3 rounds, 7 trainings).
DEFAULT = {"lr": [1e-4, 5e-5], "weight_decay": [0.01], "warmup": [0.1], "batch_size": [16], "seed": [0, 1]}
# The starting grid the Bort authors recommended (algorithms.md §6; weight decay values sic): 480 sets.
BORT_PAPER = {"lr": [1e-4, 1e-5, 9e-6], "weight_decay": [0, 10, 100, 350], "warmup": [0.35, 0.40, 0.45, 0.50],
              "batch_size": [8, 16], "seed": [0, 1, 2, 3, 4]}
PRESETS = {"default": DEFAULT, "bort-paper": BORT_PAPER}


def load_agora_space(spec: str | None) -> tuple[Theta, ...]:
    """Θ from a preset name (``default``, ``bort-paper``) or a YAML file that gives every hyperparameter's values."""
    return load_thetas(spec or "default", presets=PRESETS, required=FIELDS, option="--agora-space")


def prune(thetas: list[Theta], scores: dict[str, float]) -> list[Theta]:
    """Keep the better half of Θ by this round's dev metric (scores by :attr:`Theta.slug`), removing at least one
    (algorithms.md §6, step 5). Ties keep Θ's order (a stable sort), so pruning is deterministic."""
    ranked = sorted(thetas, key=lambda t: -scores[t.slug])
    return ranked[: len(ranked) // 2]
