"""Hyperparameter sets θ and their sets Θ: what extract's candidate trainings and Agora's rounds search over.

One :class:`Theta` and one loader serve both. Θ comes from a preset or a YAML file holding a
list of sets (``[{lr: 1e-3, batch_size: 16}, …]``) or a grid of value lists (``lr: [1e-4, 5e-5]``),
whose product is taken in a fixed order.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from bort.errors import BortError
from bort.options import opt
from bort.training.loop import OptimConfig
from bort.yaml_file import read_yaml

FIELDS = ("lr", "weight_decay", "warmup", "batch_size", "seed")
_OPTIM = {f.name: f for f in dataclasses.fields(OptimConfig)}  # θ's optimiser fields are documented there


@dataclass(frozen=True)
class Theta:
    """One hyperparameter set θ: the optimiser's learning rate, weight decay and warm-up, the batch size and the seed."""

    lr: float = field(default=1e-3, metadata=_OPTIM["lr"].metadata)
    batch_size: int = field(default=16, metadata=opt("training batch size"))
    warmup: float = field(default=0.1, metadata=_OPTIM["warmup"].metadata)
    weight_decay: float = field(default=0.01, metadata=_OPTIM["weight_decay"].metadata)
    seed: int = field(default=0, metadata=opt("seed"))

    def __post_init__(self) -> None:
        self.optim()  # validates
        if self.batch_size < 1:
            raise BortError(f"θ batch size must be at least 1, got {self.batch_size}")

    def optim(self, grad_clip: float = 1.0) -> OptimConfig:
        """The optimiser settings of θ."""
        return OptimConfig(lr=self.lr, weight_decay=self.weight_decay, warmup=self.warmup, grad_clip=grad_clip)

    @property
    def key(self) -> str:
        """The run store's key, e.g. ``lr=0.001,batch_size=16,warmup=0.1`` (weight decay and seed only where not the defaults)."""
        extra = (f",weight_decay={self.weight_decay:g}" if self.weight_decay != 0.01 else "") + (f",seed={self.seed}" if self.seed else "")
        return f"lr={self.lr:g},batch_size={self.batch_size},warmup={self.warmup:g}{extra}"

    @property
    def slug(self) -> str:
        """A folder name for reports and runs, e.g. ``lr1e-04_wd0.01_wu0.1_bs16_s0``."""
        return f"lr{self.lr:.0e}_wd{self.weight_decay:g}_wu{self.warmup:g}_bs{self.batch_size}_s{self.seed}"

    def asdict(self) -> dict:
        return dataclasses.asdict(self)


def expand(data: dict | list) -> list[dict]:
    """The sets of a YAML layout: a list of sets as it is, or the product of a grid of value lists."""
    if isinstance(data, dict):
        lists = [v if isinstance(v, list) else [v] for v in data.values()]
        return [dict(zip(data, combo)) for combo in itertools.product(*lists)]
    return data


def build_thetas(sets: list[dict], *, allowed: tuple[str, ...] = FIELDS, required: tuple[str, ...] = (), what: str = "Θ") -> tuple[Theta, ...]:
    """θ for each set, checked: only ``allowed`` keys, every ``required`` one, values of the right type."""
    hint = f"give a YAML list of sets or a grid of value lists with keys from {', '.join(allowed)}"
    if not isinstance(sets, list) or not sets or not all(isinstance(s, dict) for s in sets):
        raise BortError(f"{what} has an unexpected layout: {hint}")
    keys = set().union(*sets)
    missing, unknown = [f for f in required if f not in keys], sorted(keys - set(allowed))
    if missing or unknown:
        raise BortError(f"{what} needs the value lists {', '.join(required or allowed)} (missing: {missing or '-'}, unknown: {unknown or '-'})")
    try:
        return tuple(Theta(**{k: (int(v) if k in ("batch_size", "seed") else float(v)) for k, v in s.items()}) for s in sets)
    except (TypeError, ValueError) as exc:
        raise BortError(f"{what} has a bad value: {exc}") from None


def load_thetas(spec: str | Path, *, presets: dict[str, dict | list] | None = None, allowed: tuple[str, ...] = FIELDS,
                required: tuple[str, ...] = (), option: str = "--theta") -> tuple[Theta, ...]:
    """Θ from a preset name or a YAML file (a list of sets, or a grid of value lists)."""
    presets = presets or {}
    if str(spec) in presets:
        return build_thetas(expand(presets[str(spec)]), allowed=allowed, required=required, what=f"{option} preset '{spec}'")
    hint = f"give a YAML list of sets or a grid of value lists ({', '.join(allowed)})" + (f", or a preset ({', '.join(presets)})" if presets else "")
    data = read_yaml(Path(spec), f"{option} file", hint)
    if not isinstance(data, (dict, list)):
        raise BortError(f"{option} file '{spec}' has an unexpected layout: {hint}")
    return build_thetas(expand(data), allowed=allowed, required=required, what=f"{option} file '{spec}'")
