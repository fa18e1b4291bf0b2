"""``RUN/pareto.json``: the trained candidates no other beats on (p̂, î, ê), and the best-W ξ at each speed-up.

Both work on the rows of ``result.json`` (plain dicts), so they are tested on synthetic numbers.
"""

from __future__ import annotations

from bort.errors import BortError

SPEEDUPS = (2, 4, 8, 16)


def _trained(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["error"] is not None]


def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether ``a`` is no worse than ``b`` in every coordinate and better in one (lower is better)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def front(rows: list[dict], cost_key: str) -> list[dict]:
    """The trained rows (finite ê) that no other trained row dominates on (params, ``cost_key``, error), by params."""
    trained = _trained(rows)
    points = [(r["params"], r[cost_key], r["error"]) for r in trained]
    keep = [r for r, p in zip(trained, points) if not any(dominates(q, p) for q in points)]
    return sorted(keep, key=lambda r: (r["params"], r[cost_key], r["error"]))


def fast_enough(teacher_cost: float, cost: float, factor: float) -> bool:
    """The one rule of "at least ``factor``× faster than the teacher", by î or timed (the extraction's filter, the
    ranking of its candidates, compress's side-by-side check)."""
    return teacher_cost >= factor * cost


def check_min_speedup(factor: float | None) -> None:
    """The one check of a ``--min-speedup`` value (extract, compress): a positive factor, or none."""
    if factor is not None and not 0 < factor < float("inf"):
        raise BortError(f"--min-speedup must be a positive factor (e.g. 4 for 4× faster than the teacher), got {factor}")


def speedup(row: dict, teacher: dict, cost_key: str) -> float:
    """How many times faster than the teacher ``row`` is by î (latency or FLOPs)."""
    return teacher[cost_key] / row[cost_key]


def best_by_speedup(rows: list[dict], teacher: dict, cost_key: str, factors: tuple[int, ...] = SPEEDUPS) -> dict[str, dict]:
    """``"4x" → row``: the best-W trained row among those at least that many times faster than T (ties: fewer
    parameters); a factor no trained row reaches is left out."""
    return {f"{f}x": fast[0] for f in factors if (fast := ranked(rows, teacher, cost_key, f, by="w"))}


def ranked(rows: list[dict], teacher: dict, cost_key: str, factor: float, *, by: str = "error") -> list[dict]:
    """The trained rows at least ``factor``× faster than T, best first: by lowest ê (ties: fewer parameters), or with
    ``by="w"`` by highest W (ties: fewer parameters).

    W = S/ê trades error for size, and with a flat ê it picks the smallest shape (issue 16); a user who asks
    for "N× faster, keeping the quality" wants the shape expected to keep the most at that speed-up.
    """
    fast = [r for r in _trained(rows) if fast_enough(teacher[cost_key], r[cost_key], factor) and (by == "error" or r["w"] is not None)]
    return sorted(fast, key=lambda r: (r["error"], r["params"]) if by == "error" else (-r["w"], r["params"]))


def entry(row: dict, teacher: dict, cost_key: str) -> dict:
    """One ξ of pareto.json: its shape, numbers, speed-up and ``arch`` as ``bort pretrain --arch`` takes it."""
    keys = ("D", "A", "H", "I", "params", "latency_ms", "flops", "error", "w")
    return {**{k: row[k] for k in keys}, "speedup": speedup(row, teacher, cost_key), "arch": f"{row['D']},{row['A']},{row['H']},{row['I']}"}


def cost_key(teacher: dict) -> str:
    """The cost î is read from: measured latency where the run measured it, else FLOPs."""
    return "latency_ms" if teacher.get("latency_ms") is not None else "flops"


def pareto_doc(rows: list[dict], teacher: dict, error_kind: str) -> dict:
    """pareto.json's content: ``front`` and ``best_by_speedup`` of the candidate rows, with the cost and ê they use."""
    cost = cost_key(teacher)
    return {
        "cost": cost,
        "error_kind": error_kind,
        "front": [entry(r, teacher, cost) for r in front(rows, cost)],
        "best_by_speedup": {k: entry(r, teacher, cost) for k, r in best_by_speedup(rows, teacher, cost).items()},
    }
