"""The share of the teacher's skill a student keeps, counted above chance (algorithms.md §4d).

- :func:`baseline` is a task's trivial baseline B on a split: the official metrics of the best constant
  prediction learnt from the training set (its majority class; 1/choices for multiple choice; 0 for
  MCC, correlations and span scores, which a constant cannot earn).
- :func:`task_score` is a task's one number: the mean of its official metrics, the leaderboard's (GLUE's
  MRPC and QQP: the mean of F1 and accuracy, STS-B: of Pearson and Spearman); the baseline's is the mean
  of its baselines alike.
- :func:`kept` gives ``kept = S / T`` and ``kept_over_baseline = (S − B) / (T − B)`` of a teacher's and a
  student's predictions on the same examples, each with a seeded 95% paired bootstrap interval, and
  whether the teacher beats the baseline at all (the interval of T − B lies above 0).
- :func:`pooled` is the mean over tasks of ``kept_over_baseline``, of the tasks whose teacher beats its baseline.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from bort.tasks.scoring import score
from bort.tasks.spec import Example, TaskSpec

DRAWS, LEVEL = 1000, 0.95  # algorithms.md §4d: 1,000 resamples, the 2.5th and 97.5th percentiles


def constant_prediction(task: TaskSpec, train: Sequence[Example]) -> int | float | None:
    """The best constant prediction learnt from ``train``: the index of its most frequent label (the first of equals, in
    the task's label order), a regression's mean score; None for multiple choice and ReCoRD, which no constant scores."""
    if task.kind == "multiple_choice" or task.name == "superglue/record":
        return None
    labelled = [ex.label for ex in train if ex.label is not None]
    if not labelled:
        raise ValueError(f"{task.name}: the baseline is learnt from labelled training examples, and there are none")
    if task.kind == "regression":
        return float(np.mean([float(v) for v in labelled]))
    counts = Counter(labelled)
    return task.labels.index(max(task.labels, key=lambda name: counts.get(name, 0)))


def baseline_predictions(task: TaskSpec, train: Sequence[Example], examples: Sequence[Example]) -> list | None:
    """The constant prediction for every one of ``examples`` (None where the baseline is not a prediction)."""
    constant = constant_prediction(task, train)
    return None if constant is None else [constant] * len(examples)


def baseline(task: TaskSpec, train: Sequence[Example], examples: Sequence[Example]) -> dict[str, float]:
    """B: the task's official metrics of the constant prediction learnt from ``train``, scored on ``examples``."""
    if task.kind == "multiple_choice":
        return {m: 1.0 / len(examples[0].choices) for m in task.metrics}
    if task.name == "superglue/record":
        return {m: 0.0 for m in ("record_f1", "record_em")}
    return score(task, examples, baseline_predictions(task, train, examples))


def task_score(metrics: dict[str, float], names: Sequence[str] | None = None) -> float:
    """A task's one number: the mean of its official metrics (``names``, default: every metric given, in order)."""
    keys = [k for k in (names or metrics) if k in metrics]
    return float(np.mean([metrics[k] for k in keys]))


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _units(examples: Sequence[Example]) -> list[list[int]]:
    """What the bootstrap resamples: whole groups where examples have them (a MultiRC question's answers, a ReCoRD query's
    entities), else single examples."""
    if not any(ex.group for ex in examples):
        return [[i] for i in range(len(examples))]
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.group, []).append(i)
    return list(groups.values())


def _draw(task: TaskSpec, examples: Sequence[Example], preds: dict[str, list | None], picked: list[list[int]], base: float | None,
          names: Sequence[str]) -> dict:
    """Every model's task score on one resample; the groups renamed apart, so that a group drawn twice counts twice."""
    rows = [i for unit in picked for i in unit]
    if any(ex.group for ex in examples):
        draw = [replace(examples[i], group=f"{examples[i].group}#{k}") for k, unit in enumerate(picked) for i in unit]
    else:
        draw = [examples[i] for i in rows]
    out = {name: task_score(score(task, draw, [p[i] for i in rows]), names) for name, p in preds.items() if p is not None}
    return {**out, **({"baseline": base} if base is not None else {})}


def kept(task: TaskSpec, examples: Sequence[Example], teacher: Sequence, student: Sequence, baseline_preds: Sequence | None,
         *, draws: int = DRAWS, seed: int = 0, baseline_score: float | None = None, names: Sequence[str] | None = None) -> dict:
    """S/T and (S − B)/(T − B) of the predictions ``teacher`` and ``student`` (of :func:`bort.tasks.scoring.predictions`)
    on ``examples``, their paired bootstrap intervals and ``teacher_beats_baseline``.

    ``baseline_preds`` are the constant prediction per example, or None where B is not a prediction (multiple choice, ReCoRD):
    then ``baseline_score`` is B on every resample. ``names``: the metrics whose mean is the score (default: the task's).
    Each draw resamples the example indices once (whole groups where the
    examples have them) and scores teacher, student and baseline on it; the intervals are the 2.5th and 97.5th percentiles
    over the draws where the ratio is defined (T > 0, T > B).
    """
    preds = {"teacher": list(teacher), "student": list(student), "baseline": None if baseline_preds is None else list(baseline_preds)}
    units, names = _units(examples), tuple(names or task.metrics)
    point = _draw(task, examples, preds, units, baseline_score, names)
    T, S, B = point["teacher"], point["student"], point["baseline"]
    rng = random.Random(seed)
    ratios: dict[str, list[float]] = {"kept": [], "kept_over_baseline": [], "teacher_minus_baseline": []}
    for _ in range(draws):
        d = _draw(task, examples, preds, [units[rng.randrange(len(units))] for _ in units], baseline_score, names)
        for key, value in (("kept", _ratio(d["student"], d["teacher"])),
                           ("kept_over_baseline", _ratio(d["student"] - d["baseline"], d["teacher"] - d["baseline"])),
                           ("teacher_minus_baseline", d["teacher"] - d["baseline"])):
            if value is not None:
                ratios[key].append(value)
    tail = 100 * (1 - LEVEL) / 2
    interval = {k: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] if v else None for k, v in ratios.items()}
    point_kept, point_over = _ratio(S, T), _ratio(S - B, T - B)  # an undefined point estimate gets no interval either
    return {"teacher_score": T, "student_score": S, "baseline_score": B, "kept": point_kept,
            "kept_interval": interval["kept"] if point_kept is not None else None, "kept_over_baseline": point_over,
            "kept_over_baseline_interval": interval["kept_over_baseline"] if point_over is not None else None,
            "teacher_minus_baseline_interval": interval["teacher_minus_baseline"],
            "teacher_beats_baseline": bool(interval["teacher_minus_baseline"] and interval["teacher_minus_baseline"][0] > 0),
            "draws": draws, "seed": seed}


def pooled(entries: Sequence[dict]) -> dict:
    """The mean of ``kept_over_baseline`` over the entries whose teacher beats its baseline (algorithms.md §4d: not a ratio of
    averages), the raw ``kept`` of the same entries beside it, and the entries left out."""
    inside = [e for e in entries if e.get("teacher_beats_baseline") and e.get("kept_over_baseline") is not None]
    return {"kept_over_baseline": float(np.mean([e["kept_over_baseline"] for e in inside])) if inside else None,
            "kept": float(np.mean([e["kept"] for e in inside])) if inside else None,
            "tasks": len(inside), "left_out": len(entries) - len(inside)}


__all__ = ["DRAWS", "baseline", "baseline_predictions", "constant_prediction", "kept", "pooled", "task_score"]
