"""GLUE/SuperGLUE metrics of bort.tasks.metrics against hand-worked values and against scipy and scikit-learn (both in the test extra)."""

from __future__ import annotations

import math
import random

import pytest

from bort.tasks.metrics import (
    METRICS,
    _average_ranks,
    accuracy,
    compute,
    f1_binary,
    gender_parity,
    macro_f1,
    mcc,
    multirc_scores,
    pearson,
    record_scores,
    spearman,
)


def _random_classes(n: int, k: int, seed: int) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    labels = [rng.randrange(k) for _ in range(n)]
    preds = [y if rng.random() < 0.6 else rng.randrange(k) for y in labels]
    return preds, labels


def _random_floats(n: int, seed: int, ties: bool = False) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    labels = [float(rng.randrange(6)) if ties else rng.uniform(0, 5) for _ in range(n)]
    preds = [round(y + rng.gauss(0, 1.5)) if ties else y + rng.gauss(0, 1.5) for y in labels]
    return [float(v) for v in preds], labels


# ---------------------------------------------------------------- accuracy / F1


def test_accuracy_hand() -> None:
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == pytest.approx(0.5)
    assert accuracy([2, 2, 2], [2, 2, 2]) == 1.0


def test_f1_binary_hand() -> None:
    preds, labels = [1, 1, 0, 1, 0], [1, 0, 0, 1, 1]
    # positive=1: TP=2, FP=1, FN=1 → 2·2/(2·2+1+1)
    assert f1_binary(preds, labels) == pytest.approx(4 / 6)
    # positive=0: TP=1 (idx 2), FP=1 (idx 4), FN=1 (idx 1)
    assert f1_binary(preds, labels, positive=0) == pytest.approx(0.5)


def test_f1_binary_no_positives_is_zero() -> None:
    assert f1_binary([0, 0, 0], [0, 0, 0]) == 0.0


def test_length_mismatch_and_empty_raise() -> None:
    with pytest.raises(ValueError, match="length"):
        accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="at least one"):
        mcc([], [])


# ---------------------------------------------------------------- MCC


def test_mcc_binary_matches_confusion_formula() -> None:
    # TP=3, TN=2, FP=1, FN=2
    labels = [1, 1, 1, 0, 0, 0, 1, 1]
    preds = [1, 1, 1, 0, 0, 1, 0, 0]
    tp, tn, fp, fn = 3, 2, 1, 2
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert mcc(preds, labels) == pytest.approx(expected)
    assert expected == pytest.approx(4 / math.sqrt(240))


def test_mcc_multiclass_hand() -> None:
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 2, 0]
    # c=4, s=6, t=(2,2,2), p=(2,3,1): (4·6 − 12) / sqrt((36 − 14)(36 − 12))
    assert mcc(preds, labels) == pytest.approx(12 / math.sqrt(22 * 24))


def test_mcc_extremes() -> None:
    assert mcc([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert mcc([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)


def test_mcc_undefined_is_zero() -> None:
    assert mcc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0  # constant predictions
    assert mcc([0, 1, 0, 1], [1, 1, 1, 1]) == 0.0  # constant labels
    assert isinstance(mcc([1, 1], [0, 1]), float)


# ---------------------------------------------------------------- correlations


def test_pearson_hand() -> None:
    x, y = [1, 2, 3, 4, 5], [2, 4, 5, 4, 5]
    # dx=(-2,-1,0,1,2), dy=(-2,0,1,0,1): sxy=6, sxx=10, syy=6
    assert pearson(x, y) == pytest.approx(6 / math.sqrt(60))
    assert pearson([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]) == pytest.approx(1.0)
    assert pearson([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)


def test_average_ranks_ties() -> None:
    assert _average_ranks([10.0, 20.0, 20.0, 30.0]) == [1.0, 2.5, 2.5, 4.0]
    assert _average_ranks([3.0, 1.0, 3.0, 3.0]) == [3.0, 1.0, 3.0, 3.0]


def test_spearman_with_ties_hand() -> None:
    x, y = [1, 2, 3, 4, 5], [2, 4, 5, 4, 5]
    # ranks of y = (1, 2.5, 4.5, 2.5, 4.5), mean 3: sxy=7, sxx=10, syy=9
    assert spearman(x, y) == pytest.approx(7 / math.sqrt(90))


def test_spearman_monotone_is_one() -> None:
    x = [0.1, 0.5, 2.0, 3.0, 10.0]
    assert spearman(x, [v**3 for v in x]) == pytest.approx(1.0)
    assert spearman(x, [-math.exp(v) for v in x]) == pytest.approx(-1.0)


def test_correlations_constant_input_is_zero() -> None:
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0
    assert spearman([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]) == 0.0


@pytest.mark.parametrize("ties", [False, True])
def test_correlations_match_scipy(ties: bool) -> None:
    import scipy.stats as stats  # the test extra installs scipy: a missing one fails here instead of skipping
    for seed in range(5):
        preds, labels = _random_floats(40, seed, ties=ties)
        assert pearson(preds, labels) == pytest.approx(float(stats.pearsonr(preds, labels)[0]), abs=1e-12)
        assert spearman(preds, labels) == pytest.approx(float(stats.spearmanr(preds, labels)[0]), abs=1e-12)


# ---------------------------------------------------------------- macro-F1


def test_macro_f1_three_classes_hand() -> None:
    labels = [0, 0, 0, 1, 1, 2]
    preds = [0, 0, 1, 1, 2, 2]
    # class 0: TP2 FP0 FN1 → 4/5; class 1: TP1 FP1 FN1 → 1/2; class 2: TP1 FP1 FN0 → 2/3
    assert macro_f1(preds, labels) == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)


def test_macro_f1_counts_class_only_in_preds() -> None:
    labels = [0, 0, 1, 1]
    preds = [0, 2, 1, 1]
    # class 0: 2/3; class 1: 1; class 2 (predicted only): 0
    assert macro_f1(preds, labels) == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_classification_metrics_match_sklearn() -> None:
    import sklearn.metrics as skm  # the test extra installs scikit-learn: a missing one fails here instead of skipping
    for seed in range(5):
        preds, labels = _random_classes(50, 3, seed)
        assert accuracy(preds, labels) == pytest.approx(skm.accuracy_score(labels, preds))
        assert mcc(preds, labels) == pytest.approx(skm.matthews_corrcoef(labels, preds))
        assert macro_f1(preds, labels) == pytest.approx(skm.f1_score(labels, preds, average="macro"))
        bp, bl = _random_classes(50, 2, seed)
        assert f1_binary(bp, bl) == pytest.approx(skm.f1_score(bl, bp))
        assert mcc(bp, bl) == pytest.approx(skm.matthews_corrcoef(bl, bp))


# ---------------------------------------------------------------- MultiRC


def test_multirc_two_groups() -> None:
    groups = ["q1", "q1", "q1", "q2", "q2"]
    labels = [1, 0, 1, 0, 1]
    preds = [1, 0, 1, 1, 1]
    scores = multirc_scores(preds, labels, groups)
    assert scores["em"] == pytest.approx(0.5)  # q1 all right, q2 one wrong
    assert scores["f1a"] == pytest.approx(6 / 7)  # TP=3, FP=1, FN=0
    assert set(scores) == {"f1a", "em"}


def test_multirc_groups_need_not_be_contiguous() -> None:
    scores = multirc_scores([1, 0, 0, 1], [1, 1, 0, 1], [7, 8, 7, 8])
    assert scores["em"] == pytest.approx(0.5)


def test_multirc_group_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="groups"):
        multirc_scores([1, 0], [1, 0], ["q1"])


# ---------------------------------------------------------------- ReCoRD


def test_record_normalisation_exact_match() -> None:
    assert record_scores({"a": "The Cat!"}, {"a": ["cat"]}) == {"record_f1": 1.0, "record_em": 1.0}
    assert record_scores({"a": "  New   York, "}, {"a": ["new york"]})["record_em"] == 1.0
    assert record_scores({"a": "an apple"}, {"a": ["Apple."]})["record_em"] == 1.0


def test_record_max_over_golds_and_average() -> None:
    preds = {"a": "The Cat!", "b": "big red dog", "x": "ignored"}
    golds = {"a": ["cat"], "b": ["cat", "red dog"], "c": ["missing"]}
    # a: F1 1, EM 1; b: best gold "red dog": precision 2/3, recall 1 → F1 0.8, EM 0; c: no prediction → 0
    scores = record_scores(preds, golds)
    assert scores["record_f1"] == pytest.approx((1 + 0.8 + 0) / 3)
    assert scores["record_em"] == pytest.approx(1 / 3)


def test_record_repeated_tokens_counted_once_each() -> None:
    # common = min counts: pred (the) dog dog dog vs gold dog → 1 shared; precision 1/3, recall 1 → F1 0.5
    assert record_scores({"q": "dog dog dog"}, {"q": ["dog"]})["record_f1"] == pytest.approx(0.5)


def test_record_rejects_empty_gold() -> None:
    with pytest.raises(ValueError):
        record_scores({}, {})
    with pytest.raises(ValueError, match="no gold"):
        record_scores({"q": "x"}, {"q": []})


# ---------------------------------------------------------------- AX-g gender parity


def test_gender_parity_three_pairs() -> None:
    pair_ids = [1, 1, 2, 2, 3, 3]
    preds = [0, 0, 1, 0, 1, 1]
    assert gender_parity(preds, pair_ids) == pytest.approx(2 / 3)


def test_gender_parity_interleaved_and_bounds() -> None:
    assert gender_parity([1, 0, 1, 0], ["a", "b", "a", "b"]) == 1.0
    assert gender_parity([1, 0, 0, 1], ["a", "b", "a", "b"]) == 0.0


def test_gender_parity_singleton_raises() -> None:
    with pytest.raises(ValueError, match="once"):
        gender_parity([0, 0, 1], [1, 1, 2])


# ---------------------------------------------------------------- compute()


def test_compute_dispatch_matches_functions() -> None:
    preds, labels = [1, 1, 0, 1, 0], [1, 0, 0, 1, 1]
    out = compute(("accuracy", "f1", "mcc", "macro_f1"), preds, labels)
    assert list(out) == ["accuracy", "f1", "mcc", "macro_f1"]
    assert out["accuracy"] == pytest.approx(accuracy(preds, labels))
    assert out["f1"] == pytest.approx(4 / 6)
    assert out["mcc"] == pytest.approx(mcc(preds, labels))
    assert out["macro_f1"] == pytest.approx(macro_f1(preds, labels))
    assert all(type(v) is float for v in out.values())


def test_compute_regression() -> None:
    x, y = [1, 2, 3, 4, 5], [2, 4, 5, 4, 5]
    out = compute(("pearson", "spearman"), x, y)
    assert out == pytest.approx({"pearson": 6 / math.sqrt(60), "spearman": 7 / math.sqrt(90)})


def test_compute_multirc_and_gender_parity() -> None:
    out = compute(("f1a", "em"), [1, 0, 1, 1, 1], [1, 0, 1, 0, 1], groups=["q1", "q1", "q1", "q2", "q2"])
    assert out == pytest.approx({"f1a": 6 / 7, "em": 0.5})
    out = compute(("gender_parity",), [0, 0, 1, 0, 1, 1], None, groups=[1, 1, 2, 2, 3, 3])
    assert out == pytest.approx({"gender_parity": 2 / 3})


def test_compute_errors() -> None:
    with pytest.raises(ValueError, match="record_scores"):
        compute(("record_f1",), [1], [1])
    with pytest.raises(ValueError, match="unknown metric"):
        compute(("bleu",), [1], [1])
    with pytest.raises(ValueError, match="groups"):
        compute(("em",), [1], [1])
    with pytest.raises(ValueError, match="labels"):
        compute(("accuracy",), [1], None)


def test_compute_knows_every_official_name() -> None:
    assert set(METRICS) == {"accuracy", "f1", "mcc", "pearson", "spearman", "macro_f1", "f1a", "em", "gender_parity"}


def test_array_and_tensor_inputs() -> None:
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    preds, labels = [0, 1, 1, 1, 2, 0], [0, 0, 1, 1, 2, 2]
    expected = mcc(preds, labels)
    assert mcc(np.array(preds), np.array(labels)) == pytest.approx(expected)
    assert mcc(torch.tensor(preds), torch.tensor(labels)) == pytest.approx(expected)
    assert type(pearson(np.array([1.0, 2.0, 3.0]), torch.tensor([1.0, 3.0, 2.0]))) is float
