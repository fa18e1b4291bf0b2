"""Agora's hyperparameter sets Θ (algorithms.md §6): a YAML grid of value lists, or a preset."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

from bort.errors import BortError
from bort.training.loop import OptimConfig
from bort.utils import read_yaml

FIELDS = ("lr", "weight_decay", "warmup", "batch_size", "seed")

# The default: a small grid that this 2-core machine runs in minutes (4 sets: 3 rounds, 7 trainings).
DEFAULT = {"lr": [1e-4, 5e-5], "weight_decay": [0.01], "warmup": [0.1], "batch_size": [16], "seed": [0, 1]}
# The starting grid the Bort authors recommended (algorithms.md §6; weight decay values sic): 480 sets.
BORT_PAPER = {"lr": [1e-4, 1e-5, 9e-6], "weight_decay": [0, 10, 100, 350], "warmup": [0.35, 0.40, 0.45, 0.50],
              "batch_size": [8, 16], "seed": [0, 1, 2, 3, 4]}
PRESETS = {"default": DEFAULT, "bort-paper": BORT_PAPER}


@dataclass(frozen=True)
class AgoraTheta:
    """One hyperparameter set θ of an Agora fine-tuning."""

    lr: float
    weight_decay: float
    warmup: float
    batch_size: int
    seed: int

    def __post_init__(self) -> None:
        OptimConfig(lr=self.lr, weight_decay=self.weight_decay, warmup=self.warmup)  # validates
        if self.batch_size < 1:
            raise BortError(f"θ batch size must be at least 1, got {self.batch_size}")

    @property
    def key(self) -> str:
        """A name for folders and reports, e.g. ``lr1e-04_wd0.01_wu0.1_bs16_s0``."""
        return f"lr{self.lr:.0e}_wd{self.weight_decay:g}_wu{self.warmup:g}_bs{self.batch_size}_s{self.seed}"

    def asdict(self) -> dict:
        return asdict(self)


def grid(values: dict) -> list[AgoraTheta]:
    """Every combination of the value lists, in a fixed order."""
    missing = [f for f in FIELDS if f not in values]
    unknown = [f for f in values if f not in FIELDS]
    if missing or unknown:
        raise BortError(f"an Agora space needs exactly the value lists {', '.join(FIELDS)} (missing: {missing or '-'}, unknown: {unknown or '-'})")
    lists = [values[f] if isinstance(values[f], list) else [values[f]] for f in FIELDS]
    try:
        return [AgoraTheta(float(lr), float(wd), float(wu), int(bs), int(seed)) for lr, wd, wu, bs, seed in itertools.product(*lists)]
    except (TypeError, ValueError) as exc:
        raise BortError(f"an Agora space has a bad value: {exc}") from None


def load_space(spec: str | None) -> list[AgoraTheta]:
    """Θ from a preset name (``default``, ``bort-paper``) or a YAML file of value lists."""
    if spec is None or spec in PRESETS:
        return grid(PRESETS[spec or "default"])
    hint = f"give a YAML mapping of value lists for {', '.join(FIELDS)}, or a preset ({', '.join(PRESETS)})"
    data = read_yaml(Path(spec), "--agora-space file", hint)
    if not isinstance(data, dict):
        raise BortError(f"--agora-space file '{spec}' has an unexpected layout: {hint}")
    return grid(data)


def prune(thetas: list[AgoraTheta], scores: dict[str, float]) -> list[AgoraTheta]:
    """Keep the better half of Θ by this round's dev metric, removing at least one (algorithms.md §6, step 5).

    Ties keep Θ's order (a stable sort), so pruning is deterministic.
    """
    ranked = sorted(thetas, key=lambda t: -scores[t.key])
    return ranked[: len(ranked) // 2]
