"""Leaderboard submission files: GLUE ``<Task>.tsv``, SuperGLUE ``<Task>.jsonl``, RACE JSON answers; and one's own data's predictions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from bort.shared import write_file_out
from bort.tasks.readers.own import OWN, file_format, write_rows
from bort.tasks.registry import Example, TaskSpec


def file_name(task: TaskSpec, split: str) -> str:
    """The leaderboard's name for this task's predictions; MNLI's mismatched test set has its own file."""
    if task.name == "glue/mnli" and split.endswith("mismatched"):
        return "MNLI-mm.tsv"
    return task.submission


def _number(idx: str) -> int | str:
    return int(idx) if idx.lstrip("-").isdigit() else idx


def _glue(task: TaskSpec, examples: Sequence[Example], preds: Sequence) -> str:
    if task.kind == "regression":  # STS-B scores are on 0..5
        values = [f"{min(5.0, max(0.0, p)):.3f}" for p in preds]
    else:  # the leaderboard's labels: 0/1 for SST-2, CoLA, MRPC, QQP and WNLI, names for the others
        values = [(task.official or task.labels)[p] for p in preds]
    return "index\tprediction\n" + "".join(f"{ex.idx}\t{v}\n" for ex, v in zip(examples, values))


def _superglue_label(task: TaskSpec, pred: int):
    name = task.labels[pred]
    if task.kind == "multiple_choice":  # COPA: the choice index
        return pred
    if name in ("True", "False"):  # BoolQ, WiC, WSC: JSON booleans
        return name == "True"
    return name


def _superglue(task: TaskSpec, examples: Sequence[Example], preds: Sequence) -> str:
    if task.name == "superglue/multirc":  # nested: passage → questions → answers
        passages: dict[int | str, dict[int | str, list]] = {}
        for ex, p in zip(examples, preds):
            passage, question = ex.group.split("-", 1)
            passages.setdefault(_number(passage), {}).setdefault(_number(question), []).append({"idx": _number(ex.candidate), "label": int(p)})
        rows = [{"idx": p, "passage": {"questions": [{"idx": q, "answers": a} for q, a in qs.items()]}} for p, qs in passages.items()]
    elif task.name == "superglue/record":  # the chosen entity of each query
        rows = [{"idx": _number(ex.group), "label": ex.candidate} for ex, p in zip(examples, preds) if p]
    else:
        rows = [{"idx": _number(ex.idx), "label": _superglue_label(task, p)} for ex, p in zip(examples, preds)]
    return "".join(json.dumps(r) + "\n" for r in rows)


def _race(task: TaskSpec, examples: Sequence[Example], preds: Sequence) -> str:
    return json.dumps({ex.idx: task.labels[p] for ex, p in zip(examples, preds)}, indent=1) + "\n"


def rows(task: TaskSpec, examples: Sequence[Example], preds: Sequence) -> list[dict]:
    """One row per example: its ``idx`` and predicted ``label`` name, or ``score`` (regression)."""
    if task.kind == "regression":
        return [{"idx": ex.idx, "score": float(p)} for ex, p in zip(examples, preds)]
    return [{"idx": ex.idx, "label": task.labels[p]} for ex, p in zip(examples, preds)]


def write_submission(task: TaskSpec, examples: Sequence[Example], preds: Sequence, path: Path) -> Path:
    """Write ``preds`` (from :func:`bort.tasks.scoring.predictions`) in the leaderboard's format; for
    one's own data, :func:`rows` as CSV, TSV or JSON lines (by ``path``'s extension). The file goes through
    :func:`~bort.shared.write_file_out`: it never replaces a file bort did not write."""
    family = task.name.split("/")[0]
    if family == OWN:
        text = write_rows(rows(task, examples, preds), file_format(path))
    else:
        text = {"glue": _glue, "superglue": _superglue, "race": _race}[family](task, examples, preds)
    return write_file_out(path, text)
