"""The architecture parameters ξ = ⟨D, A, H, I⟩ (algorithms.md §1)."""

from __future__ import annotations

from dataclasses import dataclass

from bort.errors import BortError


@dataclass(frozen=True, order=True)
class Arch:
    """Depth D, attention heads A, hidden size H and intermediate size I of an encoder."""

    D: int
    A: int
    H: int
    I: int  # noqa: E741 - the papers' name

    def __post_init__(self) -> None:
        for name in ("D", "A", "H", "I"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise BortError(f"invalid architecture {self.astuple()}: {name} must be a positive integer")
        if self.H % self.A:
            raise BortError(
                f"invalid architecture ⟨{self.key}⟩: hidden size H={self.H} is not divisible by "
                f"A={self.A} attention heads; choose H a multiple of A"
            )

    @property
    def key(self) -> str:
        """The canonical text form ``D,A,H,I``, used as the key in stores and tables."""
        return f"{self.D},{self.A},{self.H},{self.I}"

    @property
    def head_dim(self) -> int:
        return self.H // self.A

    def astuple(self) -> tuple[int, int, int, int]:
        return (self.D, self.A, self.H, self.I)

    def asdict(self) -> dict[str, int]:
        return {"D": self.D, "A": self.A, "H": self.H, "I": self.I}

    @classmethod
    def parse(cls, text: str) -> "Arch":
        """Parse ``"D,A,H,I"`` (e.g. ``"4,8,768,1024"``) with a clear error on bad input."""
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise BortError(f"invalid architecture '{text}': write it as four positive integers D,A,H,I, e.g. 4,8,768,1024")
        return cls(*(int(p) for p in parts))

    def __str__(self) -> str:
        return f"⟨{self.key}⟩"
