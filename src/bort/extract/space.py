"""The architecture space Ξ: value lists per parameter, filtered by validity (algorithms.md §1)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from bort.arch import Arch
from bort.errors import BortError
from bort.yaml_file import read_yaml

PRESETS = ("bort-paper", "auto")


@dataclass(frozen=True)
class Space:
    """Value lists for D, A, H and I; their product, keeping only H divisible by A."""

    D: tuple[int, ...]
    A: tuple[int, ...]
    H: tuple[int, ...]
    I: tuple[int, ...]  # noqa: E741
    name: str = "custom"
    min_head_dim: int = 1

    def __post_init__(self) -> None:
        for key in "DAHI":
            values = getattr(self, key)
            if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
                raise BortError(f"space '{self.name}': {key} must be a non-empty list of positive integers, got {list(values)}")

    def archs(self, *, exclude: Arch | None = None) -> list[Arch]:
        """Every valid ξ, sorted; ``exclude`` (the maximum point T) is never a candidate."""
        out = {
            Arch(d, a, h, i)
            for d, a, h, i in itertools.product(self.D, self.A, self.H, self.I)
            if h % a == 0 and h // a >= self.min_head_dim
        }
        out.discard(exclude)
        if not out:
            raise BortError(f"space '{self.name}' has no valid architecture: no H is divisible by any A (or only the teacher's own ξ is left)")
        return sorted(out)

    def as_dict(self) -> dict:
        return {"name": self.name, "D": list(self.D), "A": list(self.A), "H": list(self.H), "I": list(self.I), "min_head_dim": self.min_head_dim}


def bort_paper() -> Space:
    """The grid searched for Bort, per a third-party note (mission.md): 300 valid tuples."""
    return Space(D=(2, 4, 6, 8, 10, 12), A=(4, 8, 12, 16), H=(512, 768, 1024), I=(256, 512, 768, 1024, 3072), name="bort-paper")


def auto(teacher: Arch) -> Space:
    """A space derived from the teacher T (algorithms.md §1).

    - depths: 1..D_T, or six evenly spaced depths up to D_T when D_T > 6;
    - hidden sizes: ¼, ½, ¾ and all of H_T, rounded to multiples of 16;
    - heads: A_T, A_T/2, A_T/4 (whole numbers), kept where the head dimension is ≥ 16;
    - intermediate sizes: ⅛, ¼, ½ and all of I_T, rounded to multiples of 16.
    With MiniLM-L6 ⟨6,12,384,1536⟩ this gives 263 candidates; BERT-base 287.
    """
    depths = tuple(range(1, teacher.D + 1)) if teacher.D <= 6 else tuple(sorted({round(teacher.D * k / 6) for k in range(1, 7)}))
    hidden = tuple(sorted({max(16, round(teacher.H * f / 16) * 16) for f in (0.25, 0.5, 0.75, 1.0)}))
    inter = tuple(sorted({max(16, round(teacher.I * f / 16) * 16) for f in (0.125, 0.25, 0.5, 1.0)}))
    heads = tuple(sorted({a for a in (teacher.A, teacher.A // 2, teacher.A // 4) if a >= 1}))
    return Space(D=depths, A=heads, H=hidden, I=inter, name="auto", min_head_dim=16)


def load_space(spec: str | Path, teacher: Arch) -> Space:
    """A preset name (``bort-paper``, ``auto``) or a YAML file of value lists ``D: [..] A: [..] H: [..] I: [..]``."""
    spec = str(spec)
    if spec == "bort-paper":
        return bort_paper()
    if spec == "auto":
        return auto(teacher)
    path = Path(spec).expanduser()
    data = read_yaml(path, "space file", f"give a preset ({', '.join(PRESETS)}) or a YAML file of value lists like 'D: [1, 2]'")
    if not isinstance(data, dict) or set(data) - set("DAHI") or not set("DAHI") <= set(data):
        raise BortError(f"space file '{path}' must map exactly D, A, H and I to lists of integers, e.g. 'D: [1, 2]'")
    lists = {k: tuple(v if isinstance(v, list) else [v]) for k, v in data.items()}
    return Space(**lists, name=path.stem)
