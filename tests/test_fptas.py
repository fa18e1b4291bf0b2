"""The FPTAS of algorithms.md §3 on synthetic candidates: no model is ever built here."""

from __future__ import annotations

import hashlib
import math
import random

import pytest

from bort.arch import Arch
from bort.extract.fptas import Candidate, fptas, intervals, maximal, order, size_speed_factor, w_coefficient
from bort.extract.report import pareto_front

P_T, C_T = 1000.0, 100.0  # the teacher's p̂ and î


def hashed_error(arch: Arch) -> float:
    """A deterministic pseudo-ê in [1, 3), a function of ξ alone."""
    digest = hashlib.sha256(arch.key.encode()).digest()
    return 1.0 + 2.0 * int.from_bytes(digest[:8], "big") / 2**64


def make(arch: Arch, params: float, cost: float) -> Candidate:
    params = int(params)
    return Candidate(arch=arch, params=params, params_effective=params // 2, cost=cost, flops=int(cost), s=size_speed_factor(params, cost, P_T, C_T))


def random_candidates(seed: int, n: int, *, ineligible: int = 0) -> list[Candidate]:
    """``n`` eligible candidates (smaller and faster than T), then ``ineligible`` larger or slower ones."""
    rng = random.Random(seed)
    out = [make(Arch(i + 1, 1, 16, 16), rng.uniform(1, P_T - 1), rng.uniform(1, C_T - 1)) for i in range(n)]
    for j in range(ineligible):
        params, cost = [(rng.uniform(P_T, 3 * P_T), rng.uniform(C_T, 3 * C_T)),  # both factors negative
                        (rng.uniform(P_T, 3 * P_T), rng.uniform(1, C_T)),  # larger only
                        (rng.uniform(1, P_T), rng.uniform(C_T, 3 * C_T))][j % 3]  # slower only
        out.append(make(Arch(n + j + 1, 1, 16, 16), params, cost))
    return out


class Recorder:
    """An ê function that records which candidates it was asked to train, and in which batches (phases)."""

    def __init__(self, fn=lambda c: hashed_error(c.arch)):
        self.fn, self.calls, self.batches = fn, [], []

    def __call__(self, batch: list[Candidate]) -> list[float]:
        assert all(c.eligible for c in batch), f"ineligible {[c.arch for c in batch if not c.eligible]} was trained"
        self.calls += [c.arch for c in batch]
        self.batches.append(len(batch))
        return [self.fn(c) for c in batch]


def test_size_speed_factor_values():
    assert size_speed_factor(250, 50, 1000, 100) == pytest.approx(0.75 * 0.5)
    assert size_speed_factor(2000, 300, 1000, 100) is None  # (−1)·(−2) = 2 must not count
    assert size_speed_factor(1000, 50, 1000, 100) is None  # not smaller
    assert size_speed_factor(500, 100, 1000, 100) is None  # not faster
    assert size_speed_factor(500, 120, 1000, 100) is None


def test_w_coefficient():
    assert w_coefficient(0.3, 2.0) == pytest.approx(0.15)
    assert w_coefficient(None, 2.0) is None and w_coefficient(0.3, None) is None
    assert w_coefficient(0.3, math.inf) == 0.0


def test_ineligible_are_never_trained_nor_best():
    """Larger or slower than T: S and W stay None, never trained, never best, whatever their ê."""
    cands = random_candidates(1, 6, ineligible=9)
    bad = [c for c in cands if not c.eligible]
    assert len(bad) == 9 and all(c.s is None for c in bad)
    # The ineligible ones would win by far if they were scored, since their ê is tiny.
    rec = Recorder(lambda c: 1e-9 if c.arch.D > 6 else hashed_error(c.arch))
    result = fptas(cands, rec, epsilon=1)
    assert set(rec.calls) == {c.arch for c in cands if c.eligible}
    assert all(c.w is None and c.error is None for c in bad)
    assert result.best.eligible and result.best.arch.D <= 6
    assert len(result.candidates) == 15  # every candidate stays in the table


def test_no_eligible_candidate_gives_no_best():
    cands = random_candidates(2, 0, ineligible=5)
    rec = Recorder()
    result = fptas(cands, rec, epsilon=1)
    assert result.best is None and rec.calls == [] and result.intervals == 0


@pytest.mark.parametrize("seed", range(5))
def test_epsilon_one_is_exhaustive_argmax(seed):
    """ε = 1 trains every eligible candidate and returns the argmax of W = S/ê over all of them."""
    cands = random_candidates(seed, 40, ineligible=10)
    result = fptas(cands, Recorder(), epsilon=1)
    eligible = [c for c in cands if c.eligible]
    scores = {c.arch: (1 - c.params / P_T) * (1 - c.cost / C_T) / hashed_error(c.arch) for c in eligible}
    assert result.intervals == len(result.trained) == len(eligible) == 40
    assert result.best.arch == max(scores, key=scores.get)
    assert result.best.w == pytest.approx(max(scores.values()))
    for c in eligible:
        assert c.w == pytest.approx(scores[c.arch])


def test_intervals_and_representatives():
    """ε = 3 over 10 eligible: 4 intervals (3,3,3,1); the highest-S member of each is trained."""
    cands = random_candidates(7, 10, ineligible=4)
    rec = Recorder()
    result = fptas(cands, rec, epsilon=3)
    by_s = sorted((c for c in cands if c.eligible), key=lambda c: c.s, reverse=True)
    assert result.intervals == 4
    assert [len(p) for p in intervals(order(cands), 3)] == [3, 3, 3, 1]
    assert rec.calls == [by_s[i].arch for i in (0, 3, 6, 9)]
    assert [c.arch for c in result.trained] == rec.calls
    assert all(c.error is None and c.w is None for i, c in enumerate(by_s) if i % 3)
    reps = [by_s[i] for i in (0, 3, 6, 9)]
    assert result.best is max(reps, key=lambda c: c.s / hashed_error(c.arch))


@pytest.mark.parametrize(("n", "epsilon"), [(10, 1), (10, 4), (10, 10), (10, 25), (7, 2)])
def test_interval_count_is_ceiling(n, epsilon):
    result = fptas(random_candidates(3, n, ineligible=2), Recorder(), epsilon=epsilon)
    assert result.intervals == len(result.trained) == -(-n // epsilon)


def test_refine_trains_every_member_of_the_k_best_intervals():
    cands = random_candidates(11, 14)
    rec = Recorder()
    result = fptas(cands, rec, epsilon=4, refine=2)  # intervals of 4, 4, 4, 2
    parts = [p for p in (sorted(cands, key=lambda c: -c.s)[i : i + 4] for i in range(0, 14, 4))]
    rep_w = [p[0].s / hashed_error(p[0].arch) for p in parts]
    best_two = sorted(range(4), key=lambda i: -rep_w[i])[:2]
    expected = {p[0].arch for p in parts} | {c.arch for i in best_two for c in parts[i]}
    assert set(rec.calls) == expected and len(rec.calls) == len(expected)  # nothing trained twice
    assert len(result.trained) == 4 + sum(len(parts[i]) - 1 for i in best_two)
    assert rec.batches == [4, len(expected) - 4]  # two phases, each one batch: representatives, then refinement
    trained = [c for c in cands if c.arch in expected]
    assert result.best is max(trained, key=lambda c: c.s / hashed_error(c.arch))


def test_maximal_are_the_eligible_shapes_no_other_eligible_one_contains():
    grid = [Arch(d, a, h, i) for d in (1, 2, 3) for a in (2, 4) for h in (32, 64) for i in (64, 128)]
    # eligible: D·H·I ≤ 2·64·64, and A = 2 only where H = 64 (a budget that cuts D, A and the widths apart)
    cands = [make(x, 10 * x.H, 1.0) if x.D * x.H * x.I <= 2 * 64 * 64 and (x.A == 2 or x.H == 32) else make(x, 10 * x.H, 2 * C_T)
             for x in grid]
    got = {c.arch for c in maximal(cands)}
    eligible = [c.arch for c in cands if c.eligible]
    brute = {x for x in eligible if not any(y != x and all(p >= q for p, q in zip(y.astuple(), x.astuple())) for y in eligible)}
    assert got == brute == {Arch(2, 2, 64, 64), Arch(1, 2, 64, 128), Arch(3, 4, 32, 64), Arch(2, 4, 32, 128)}


def test_also_trains_the_given_candidates_once_more_in_one_batch():
    cands = random_candidates(3, 12, ineligible=3)
    rec = Recorder()
    extra = cands[:5] + cands[-3:]  # some are representatives already, the last three are ineligible
    result = fptas(cands, rec, epsilon=4, also=extra)
    reps = {p[0].arch for p in intervals(order(cands), 4)}
    assert rec.batches == [3, len({c.arch for c in cands[:5]} - reps)]
    assert set(rec.calls) == reps | {c.arch for c in cands[:5]} and len(rec.calls) == len(set(rec.calls))
    assert result.best is max(result.trained, key=lambda c: c.w)


def test_refine_all_intervals_equals_exhaustive():
    exhaustive = fptas(random_candidates(5, 12), Recorder(), epsilon=1).best.arch
    refined = fptas(random_candidates(5, 12), Recorder(), epsilon=5, refine=3)
    assert refined.best.arch == exhaustive and len(refined.trained) == 12


def test_diverged_training_is_never_best():
    cands = random_candidates(4, 6)
    top = max(cands, key=lambda c: c.s)
    result = fptas(cands, Recorder(lambda c: math.inf if c is top else 2.0), epsilon=1)
    assert top.w == 0.0 and result.best is not top
    assert result.best is max((c for c in cands if c is not top), key=lambda c: c.s)


def test_all_diverged_gives_no_best():
    result = fptas(random_candidates(4, 5), Recorder(lambda c: math.inf), epsilon=1)
    assert len(result.trained) == 5 and result.best is None


def test_equal_w_prefers_fewer_parameters():
    a = make(Arch(1, 1, 16, 16), 400, 50)
    b = make(Arch(2, 1, 16, 16), 500, 40)  # (0.5)(0.6) = (0.6)(0.5): same S
    assert a.s == pytest.approx(b.s)
    result = fptas([b, a], Recorder(lambda c: 1.0), epsilon=1)
    assert result.best is a


def brute_force_front(points):
    """Points not weakly dominated by a different point (lower is better on both axes)."""
    return sorted(p for p in set(points) if not any(q != p and q[0] <= p[0] and q[1] <= p[1] for q in points))


def test_pareto_front_example():
    points = [(3, 1), (1, 5), (2, 2), (2, 4), (4, 0.5), (5, 3), (1, 6)]
    assert pareto_front(points) == [(1, 5), (2, 2), (3, 1), (4, 0.5)]
    assert pareto_front([]) == []


@pytest.mark.parametrize("seed", range(4))
def test_pareto_front_matches_brute_force(seed):
    rng = random.Random(seed)
    points = [(rng.random(), rng.random()) for _ in range(60)]
    assert pareto_front(points) == brute_force_front(points)
