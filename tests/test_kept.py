"""The honest measure (algorithms.md §4d): trivial baselines, kept = S/T and kept_over_baseline = (S − B)/(T − B), the paired
bootstrap and the pooled figure, against numbers worked out by hand or computed another way."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bort.tasks import metrics
from bort.tasks.kept import baseline, baseline_predictions, constant_prediction, kept, pooled, task_score
from bort.tasks.registry import Example, get_task
from bort.tasks.source import own_spec


def _examples(labels: list, texts: int = 1) -> list[Example]:
    return [Example(idx=str(i), texts=("a",) * texts, label=label) for i, label in enumerate(labels)]


def test_mrpc_baseline_is_the_all_positive_predictor_when_positives_are_the_majority():
    mrpc = get_task("glue/mrpc")  # metrics f1, accuracy; the positive class is "equivalent"
    dev = _examples(["equivalent"] * 7 + ["not_equivalent"] * 3, texts=2)
    majority_positive = _examples(["equivalent"] * 6 + ["not_equivalent"] * 4, texts=2)
    b = baseline(mrpc, majority_positive, dev)
    assert b == pytest.approx({"f1": 2 * 0.7 / 1.7, "accuracy": 0.7})  # F1 of all-positive: 2p / (1 + p)
    assert task_score(b, mrpc.metrics) == pytest.approx((2 * 0.7 / 1.7 + 0.7) / 2)  # the mean of the two baselines
    majority_negative = _examples(["not_equivalent"] * 6 + ["equivalent"] * 4, texts=2)
    assert baseline(mrpc, majority_negative, dev) == pytest.approx({"f1": 0.0, "accuracy": 0.3})  # all-negative: F1 0


def test_correlations_and_mcc_have_a_zero_baseline_and_multiple_choice_one_over_the_choices():
    cola = get_task("glue/cola")
    assert baseline(cola, _examples(["acceptable"] * 7 + ["unacceptable"] * 3), _examples(["acceptable", "unacceptable"] * 5)) == {"mcc": 0.0}
    stsb = get_task("glue/stsb")
    train = _examples([0.5, 4.0, 2.5], texts=2)
    assert constant_prediction(stsb, train) == pytest.approx(7 / 3)
    assert baseline(stsb, train, _examples([1.0, 2.0, 3.0], texts=2)) == {"pearson": 0.0, "spearman": 0.0}
    copa = get_task("superglue/copa")
    choice = Example(idx="0", texts=("premise",), label="choice1", choices=(("p", "a"), ("p", "b")))
    assert baseline(copa, [choice], [choice]) == {"accuracy": 0.5} and baseline_predictions(copa, [choice], [choice]) is None


def test_own_data_baseline_is_the_training_majority_with_macro_f1():
    spec = own_spec("own/x", ("a", "b", "c"), regression=False, suffix=".csv")  # accuracy and macro-F1 beyond two labels
    train = _examples(["b"] * 5 + ["a"] * 3 + ["c"] * 2)
    dev = _examples(["a"] * 4 + ["b"] * 4 + ["c"] * 2)
    b = baseline(spec, train, dev)  # always "b": accuracy 0.4; F1 of b = 2·4 / (2·4 + 6 + 0), of a and c 0
    assert b == pytest.approx({"accuracy": 0.4, "macro_f1": (8 / 14) / 3})
    assert b["macro_f1"] == pytest.approx(metrics.macro_f1([1] * 10, [0] * 4 + [1] * 4 + [2] * 2))


def _rte_case() -> tuple:
    rte = get_task("glue/rte")  # labels (entailment, not_entailment); accuracy
    gold = [0, 1] * 10
    dev = _examples([rte.labels[g] for g in gold], texts=2)
    train = _examples(["entailment"] * 11 + ["not_entailment"] * 9, texts=2)  # B: always entailment, half right
    teacher = [g if i < 16 else 1 - g for i, g in enumerate(gold)]  # 16 of 20 right: T = 0.8
    student = [g if i < 13 else 1 - g for i, g in enumerate(gold)]  # 13 of 20: S = 0.65
    return rte, dev, train, teacher, student, gold


def test_kept_over_baseline_is_the_share_of_the_gain_over_chance():
    rte, dev, train, teacher, student, _ = _rte_case()
    k = kept(rte, dev, teacher, student, baseline_predictions(rte, train, dev), draws=200, seed=0)
    assert (k["teacher_score"], k["student_score"], k["baseline_score"]) == pytest.approx((0.8, 0.65, 0.5))
    assert k["kept"] == pytest.approx(0.65 / 0.8) and k["kept_over_baseline"] == pytest.approx(0.15 / 0.3)
    # A constant student "keeps" 62.5% by the raw ratio, and nothing of the skill.
    const = kept(rte, dev, teacher, [0] * 20, baseline_predictions(rte, train, dev), draws=50, seed=0)
    assert const["kept"] == pytest.approx(0.625) and const["kept_over_baseline"] == 0.0


def test_the_bootstrap_is_seeded_pairs_the_draws_and_its_interval_holds_the_estimate():
    rte, dev, train, teacher, student, gold = _rte_case()
    base = baseline_predictions(rte, train, dev)
    a = kept(rte, dev, teacher, student, base, draws=300, seed=7)
    assert a == kept(rte, dev, teacher, student, base, draws=300, seed=7)
    assert a["kept_over_baseline_interval"] != kept(rte, dev, teacher, student, base, draws=300, seed=8)["kept_over_baseline_interval"]
    for key in ("kept", "kept_over_baseline"):
        lo, hi = a[f"{key}_interval"]
        assert lo <= a[key] <= hi and lo < hi
    # The same draws computed another way: numpy over the resampled indices, the same random stream.
    rng, correct = random.Random(7), {name: np.array([p == g for p, g in zip(preds, gold)], dtype=float)
                                      for name, preds in (("t", teacher), ("s", student), ("b", base))}
    ratios = []
    for _ in range(300):
        idx = [rng.randrange(20) for _ in range(20)]
        t, s, b = (correct[n][idx].mean() for n in ("t", "s", "b"))
        if t > b:
            ratios.append((s - b) / (t - b))
    assert a["kept_over_baseline_interval"] == pytest.approx([np.percentile(ratios, 2.5), np.percentile(ratios, 97.5)])


def test_a_teacher_at_chance_gives_no_share_and_stays_out_of_the_pooled_figure():
    rte, dev, train, _, student, gold = _rte_case()
    at_chance = [0] * 20  # the baseline's own predictions: T = B
    k = kept(rte, dev, at_chance, student, baseline_predictions(rte, train, dev), draws=100, seed=0)
    assert k["kept_over_baseline"] is None and k["kept_over_baseline_interval"] is None and not k["teacher_beats_baseline"]
    good = {"kept_over_baseline": 0.5, "kept": 0.9, "teacher_beats_baseline": True}
    better = {"kept_over_baseline": 0.8, "kept": 0.95, "teacher_beats_baseline": True}
    assert pooled([good, better, k]) == pytest.approx({"kept_over_baseline": 0.65, "kept": 0.925, "tasks": 2, "left_out": 1})


def test_groups_are_resampled_whole():
    multirc = get_task("superglue/multirc")  # f1a over answers, em over questions (groups)
    dev = [Example(idx=str(i), texts=("p", "q"), label=("True" if i % 3 else "False"), group=f"q{i // 3}") for i in range(12)]
    gold = [multirc.labels.index(ex.label) for ex in dev]
    teacher, student = gold, [1] * 12
    k = kept(multirc, dev, teacher, student, baseline_predictions(multirc, dev, dev), draws=100, seed=0)
    want = metrics.compute(("f1a", "em"), student, gold, groups=[ex.group for ex in dev])
    assert k["student_score"] == pytest.approx(task_score(want)) and k["teacher_score"] == 1.0

