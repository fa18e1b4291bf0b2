"""The W-coefficient and the extraction algorithm (algorithms.md §3), free of any model code.

The search sees candidates as rows with p̂ and î already known, and an ``error`` callable that
trains a batch of them and returns their ê. That keeps it testable with synthetic numbers, and
lets the recipe in :mod:`bort.extract.recipe` plug in caching, progress reporting and the
backends that train a batch in parallel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bort.arch import Arch


@dataclass
class Candidate:
    """One ξ of the space with its surrogates. ``cost`` is î as the search uses it."""

    arch: Arch
    params: int
    params_effective: int
    cost: float
    flops: int
    latency_ms: float | None = None
    s: float | None = None  # size–speed factor; None when ineligible
    error: float | None = None
    w: float | None = None

    @property
    def eligible(self) -> bool:
        return self.s is not None


def size_speed_factor(params: float, cost: float, params_t: float, cost_t: float) -> float | None:
    """S = (1 − p̂/p̂(T)) · (1 − î/î(T)), or None unless ξ is both smaller and faster than T.

    Two negative factors must never multiply into a positive score, hence None, not a number.
    """
    size, speed = 1 - params / params_t, 1 - cost / cost_t
    return size * speed if size > 0 and speed > 0 else None


def w_coefficient(s: float | None, error: float | None) -> float | None:
    """W = S / ê; None where S is undefined or ê unknown; 0 for a diverged training (ê = ∞)."""
    if s is None or error is None:
        return None
    return 0.0 if math.isinf(error) else s / error


def order(candidates: list[Candidate]) -> list[Candidate]:
    """Eligible candidates by S, highest first (ties broken by ξ, for determinism).

    This is the ordering the AB^nC property asserts; ineligible candidates cannot be trained,
    so the intervals are cut over the eligible ones only.
    """
    return sorted((c for c in candidates if c.eligible), key=lambda c: (-c.s, c.arch.astuple()))


def intervals(ordered: list[Candidate], epsilon: int) -> list[list[Candidate]]:
    """⌈n/ε⌉ consecutive intervals of ε candidates each; the last may be shorter."""
    if epsilon < 1:
        raise ValueError("epsilon must be at least 1")
    return [ordered[i : i + epsilon] for i in range(0, len(ordered), epsilon)]


def maximal(candidates: list[Candidate]) -> list[Candidate]:
    """The eligible candidates that no other eligible one contains (at least as large in each of D, A, H and I).

    A contained shape's teacher slices are slices of its container's, so where the search is for
    the lowest ê within a budget (`bort compress --pick quality`), it lies among these (docs/design.md).
    """
    eligible = [c for c in candidates if c.eligible]

    def contains(a: Arch, b: Arch) -> bool:
        return a != b and all(x >= y for x, y in zip(a.astuple(), b.astuple()))

    return [c for c in order(eligible) if not any(contains(o.arch, c.arch) for o in eligible)]


@dataclass
class SearchResult:
    best: Candidate | None
    candidates: list[Candidate]
    trained: list[Candidate]
    intervals: int


def fptas(
    candidates: list[Candidate],
    error: Callable[[list[Candidate]], list[float]],
    *,
    epsilon: int,
    refine: int = 0,
    also: Sequence[Candidate] = (),
) -> SearchResult:
    """Train one representative (the highest S) per interval, optionally refine, return the best W.

    ``best`` is None when no candidate is eligible or every training diverged.

    ``error(batch)`` must return ê for each candidate of ``batch`` (the minimum over Θ), in
    order. The search proceeds in phases, each one batch that may be trained in parallel: the
    representatives; then, with ``refine = K``, every other member of the K intervals whose
    representatives scored the best W; then those of ``also`` not trained yet (e.g. the
    :func:`maximal` ones). ε = 1 trains every eligible candidate: exhaustive search.
    """
    parts = intervals(order(candidates), epsilon)
    trained: list[Candidate] = []

    def score(batch: list[Candidate]) -> None:
        for c, e in zip(batch, error(batch), strict=True):
            c.error = e
            c.w = w_coefficient(c.s, c.error)
            trained.append(c)

    score([part[0] for part in parts])
    if refine > 0:
        ranked = sorted(parts, key=lambda p: (-p[0].w, p[0].arch.astuple()))
        score([c for part in ranked[:refine] for c in part[1:]])
    if also:
        done = {c.arch for c in trained}
        score([c for c in also if c.eligible and c.arch not in done])
    # A diverged training (ê = ∞) can never be chosen, even when every training diverged.
    best = max((c for c in trained if math.isfinite(c.error)), key=lambda c: (c.w, -c.params), default=None)
    return SearchResult(best=best, candidates=candidates, trained=trained, intervals=len(parts))
