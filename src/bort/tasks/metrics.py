"""Evaluation metrics of the GLUE and SuperGLUE tasks, in pure Python.

Each function follows the definition the official benchmark scorers use (scikit-learn and scipy for GLUE, the SuperGLUE
reference scripts for MultiRC, ReCoRD and AX-g), so scores are comparable with published numbers. Inputs may be any
sequence (lists, tuples, numpy arrays, torch tensors); every function returns a plain Python ``float`` (or a dict of them),
as a fraction in [0, 1] (or [-1, 1] for correlations), not a percentage.

Why not scikit-learn and scipy: they would add two large dependencies for a handful of
closed-form scores, and MultiRC, ReCoRD and AX-g are in neither. The tests compare every formula
here with scikit-learn and scipy where those are installed.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "METRICS",
    "accuracy",
    "compute",
    "f1_binary",
    "gender_parity",
    "macro_f1",
    "mcc",
    "multirc_scores",
    "pearson",
    "record_scores",
    "spearman",
]

METRICS: tuple[str, ...] = ("accuracy", "f1", "mcc", "pearson", "spearman", "macro_f1", "f1a", "em", "gender_parity")
"""The metric names :func:`compute` dispatches."""

_RECORD_METRICS = ("record_f1", "record_em")
_PUNCTUATION = frozenset(string.punctuation)


def _as_list(values: Any) -> list:
    """A plain list of Python scalars (``.tolist()`` for numpy arrays and torch tensors, so elements hash by value)."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    return list(values)


def _paired(preds: Any, labels: Any) -> tuple[list, list]:
    p, y = _as_list(preds), _as_list(labels)
    if len(p) != len(y):
        raise ValueError(f"preds and labels differ in length: {len(p)} vs {len(y)}")
    if not p:
        raise ValueError("metrics need at least one example")
    return p, y


def _f1_counts(tp: int, fp: int, fn: int) -> float:
    """F1 = 2·TP / (2·TP + FP + FN); 0.0 when there are no positives at all (scikit-learn's zero_division=0)."""
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom else 0.0


def accuracy(preds: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    """Fraction of examples whose prediction equals the label (``sklearn.metrics.accuracy_score``)."""
    p, y = _paired(preds, labels)
    return float(sum(a == b for a, b in zip(p, y)) / len(p))


def f1_binary(preds: Sequence[Hashable], labels: Sequence[Hashable], positive: Hashable = 1) -> float:
    """F1 of the ``positive`` class (``sklearn.metrics.f1_score(average="binary")``), the GLUE MRPC/QQP F1.

    Returns 0.0 when neither the predictions nor the labels contain the positive class.
    """
    p, y = _paired(preds, labels)
    tp = sum(a == positive and b == positive for a, b in zip(p, y))
    fp = sum(a == positive and b != positive for a, b in zip(p, y))
    fn = sum(a != positive and b == positive for a, b in zip(p, y))
    return float(_f1_counts(tp, fp, fn))


def mcc(preds: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    """Matthews correlation coefficient, the multi-class general form of ``sklearn.metrics.matthews_corrcoef`` (GLUE CoLA).

    With confusion matrix C, t_k = Σ_j C[k, j] (true count of class k), p_k = Σ_i C[i, k] (predicted count), c = trace C and
    s = N: MCC = (c·s − Σ_k p_k·t_k) / sqrt((s² − Σ_k p_k²)(s² − Σ_k t_k²)). For two classes this is the familiar
    (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)). Returns 0.0 when the denominator is zero (e.g. constant predictions).
    """
    p, y = _paired(preds, labels)
    s = len(p)
    c = sum(a == b for a, b in zip(p, y))
    pred_counts, true_counts = Counter(p), Counter(y)
    classes = set(pred_counts) | set(true_counts)
    cov_py = c * s - sum(pred_counts[k] * true_counts[k] for k in classes)
    cov_pp = s * s - sum(v * v for v in pred_counts.values())
    cov_yy = s * s - sum(v * v for v in true_counts.values())
    if cov_pp == 0 or cov_yy == 0:
        return 0.0
    return float(cov_py / math.sqrt(cov_pp * cov_yy))


def _pearson_lists(x: list[float], y: list[float]) -> float:
    n = len(x)
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    dx = [v - mx for v in x]
    dy = [v - my for v in y]
    sxy = math.fsum(a * b for a, b in zip(dx, dy))
    sxx = math.fsum(a * a for a in dx)
    syy = math.fsum(b * b for b in dy)
    if sxx == 0.0 or syy == 0.0:
        return 0.0
    r = sxy / (math.sqrt(sxx) * math.sqrt(syy))
    return float(max(-1.0, min(1.0, r)))


def pearson(preds: Sequence[float], labels: Sequence[float]) -> float:
    """Pearson product-moment correlation (``scipy.stats.pearsonr``), the GLUE STS-B metric.

    Returns 0.0 where scipy would give NaN, i.e. when either side is constant (the correlation is undefined).
    """
    p, y = _paired(preds, labels)
    return _pearson_lists([float(v) for v in p], [float(v) for v in y])


def _average_ranks(values: list[float]) -> list[float]:
    """1-based ranks, tied values sharing the mean of the ranks they span (``scipy.stats.rankdata(method="average")``)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j) / 2 + 1  # mean of the 1-based ranks i+1 .. j+1
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        i = j + 1
    return ranks


def spearman(preds: Sequence[float], labels: Sequence[float]) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``): Pearson correlation of the average ranks, ties sharing their mean rank.

    Returns 0.0 when either side is constant (undefined).
    """
    p, y = _paired(preds, labels)
    return _pearson_lists(_average_ranks([float(v) for v in p]), _average_ranks([float(v) for v in y]))


def macro_f1(preds: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels ∪ preds (``f1_score(average="macro")``; SuperGLUE CB)."""
    p, y = _paired(preds, labels)
    classes = set(p) | set(y)
    scores = []
    for k in classes:
        tp = sum(a == k and b == k for a, b in zip(p, y))
        fp = sum(a == k and b != k for a, b in zip(p, y))
        fn = sum(a != k and b == k for a, b in zip(p, y))
        scores.append(_f1_counts(tp, fp, fn))
    return float(math.fsum(scores) / len(scores))


def _group_indices(groups: Any, n: int) -> dict[Hashable, list[int]]:
    g = _as_list(groups)
    if len(g) != n:
        raise ValueError(f"groups has {len(g)} entries for {n} predictions")
    out: dict[Hashable, list[int]] = defaultdict(list)
    for i, key in enumerate(g):
        out[key].append(i)
    return out


def multirc_scores(preds: Sequence[int], labels: Sequence[int], groups: Sequence[Hashable]) -> dict[str, float]:
    """SuperGLUE MultiRC scores: ``f1a`` is binary F1 (positive=1) over all answer options pooled, ``em`` the fraction of
    questions (examples sharing a ``groups`` id) whose every answer option is predicted correctly.
    """
    p, y = _paired(preds, labels)
    by_group = _group_indices(groups, len(p))
    exact = sum(all(p[i] == y[i] for i in idx) for idx in by_group.values())
    return {"f1a": f1_binary(p, y, positive=1), "em": float(exact / len(by_group))}


def _normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lowercase, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, gold: str) -> float:
    """SQuAD v1.1 token-level F1 between normalised answers (0.0 when they share no token)."""
    pred_tokens = _normalize_answer(prediction).split()
    gold_tokens = _normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _exact_match(prediction: str, gold: str) -> float:
    return float(_normalize_answer(prediction) == _normalize_answer(gold))


def record_scores(pred_texts: Mapping[str, str], gold_texts: Mapping[str, Iterable[str]]) -> dict[str, float]:
    """SuperGLUE ReCoRD scores (its reference ``evaluate.py``, i.e. SQuAD v1.1): per query id in ``gold_texts``, the maximum
    over its gold answers of token F1 and of exact match after normalisation, averaged over all gold queries.

    A query with no prediction scores 0; predictions for ids not in ``gold_texts`` are ignored. Returns
    ``{"record_f1": ..., "record_em": ...}`` as fractions.
    """
    if not gold_texts:
        raise ValueError("record_scores needs at least one gold query")
    f1_total = em_total = 0.0
    for qid, golds in gold_texts.items():
        answers = list(golds)
        if not answers:
            raise ValueError(f"query {qid!r} has no gold answers")
        if qid not in pred_texts:
            continue
        pred = pred_texts[qid]
        f1_total += max(_token_f1(pred, g) for g in answers)
        em_total += max(_exact_match(pred, g) for g in answers)
    n = len(gold_texts)
    return {"record_f1": float(f1_total / n), "record_em": float(em_total / n)}


def gender_parity(preds: Sequence[Hashable], pair_ids: Sequence[Hashable]) -> float:
    """SuperGLUE AX-g (Winogender) gender parity: the fraction of pairs (examples sharing a pair id) whose predictions all agree.

    Every pair id must occur at least twice; returns a value in [0, 1].
    """
    p = _as_list(preds)
    if not p:
        raise ValueError("gender_parity needs at least one example")
    by_pair = _group_indices(pair_ids, len(p))
    singles = [k for k, idx in by_pair.items() if len(idx) < 2]
    if singles:
        raise ValueError(f"{len(singles)} pair id(s) occur only once, e.g. {singles[0]!r}")
    agree = sum(len({p[i] for i in idx}) == 1 for idx in by_pair.values())
    return float(agree / len(by_pair))


def compute(metrics: Sequence[str], preds: Sequence[Any], labels: Sequence[Any] | None, *, groups: Sequence[Hashable] | None = None) -> dict[str, float]:
    """Compute the named metrics, returning ``{name: value}`` in the order asked.

    Names are the official ones: ``accuracy``, ``f1`` (binary, positive=1), ``mcc``, ``pearson``, ``spearman``,
    ``macro_f1``, ``f1a`` and ``em`` (MultiRC, with ``groups`` the question ids) and ``gender_parity`` (AX-g, with
    ``groups`` the pair ids; ``labels`` is not used and may be None). The ReCoRD metrics are not dispatched here: they need
    answer texts, so call :func:`record_scores`.
    """
    names = tuple(metrics)
    for name in names:
        if name in _RECORD_METRICS:
            raise ValueError(f"metric {name!r} is not dispatched by compute(): ReCoRD needs answer texts, call record_scores() directly")
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    if groups is None and any(n in ("f1a", "em", "gender_parity") for n in names):
        raise ValueError("metrics 'f1a', 'em' and 'gender_parity' need groups (question ids or pair ids)")
    if labels is None and any(n != "gender_parity" for n in names):
        raise ValueError("labels are required for every metric except 'gender_parity'")

    simple = {"accuracy": accuracy, "f1": f1_binary, "mcc": mcc, "pearson": pearson, "spearman": spearman, "macro_f1": macro_f1}
    out: dict[str, float] = {}
    multirc: dict[str, float] | None = None
    for name in names:
        if name in simple:
            out[name] = simple[name](preds, labels)
        elif name in ("f1a", "em"):
            if multirc is None:
                multirc = multirc_scores(preds, labels, groups)
            out[name] = multirc[name]
        else:  # gender_parity
            out[name] = gender_parity(preds, groups)
    return out
