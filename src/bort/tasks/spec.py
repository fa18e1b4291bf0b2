"""The records of the fine-tuning tasks: :class:`TaskSpec` (what a task is) and :class:`Example` (one input row).

They live apart from the registry (:mod:`bort.tasks.registry`) so that the readers of the official
distributions (:mod:`bort.tasks.readers`) and the registry can both import them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One input row of a task, before tokenisation."""

    idx: str  # the id used in submission files (GLUE: index/row number; SuperGLUE: idx; RACE: "<file id>-<question number>")
    texts: tuple[str, ...]  # 1 or 2 segments fed to the encoder; for multiple choice: the shared context
    label: str | float | None  # label name, float (regression), choice index/letter (multiple choice); None when unlabelled
    choices: tuple[tuple[str, str], ...] = ()  # multiple choice only: (first segment, second segment) per choice
    group: str = ""  # MultiRC: question id "p-q"; ReCoRD: query id; AX-g: pair id; else ""
    candidate: str = ""  # ReCoRD: the entity filled into the placeholder; MultiRC: answer idx; else ""


@dataclass(frozen=True)
class TaskSpec:
    """What a task is scored on and how its predictions are submitted."""

    name: str  # "glue/rte"
    kind: str  # "classification" | "regression" | "multiple_choice"
    labels: tuple[str, ...]  # label names in index order; () for regression
    metrics: tuple[str, ...]  # official metric names, the leaderboard's main one first
    dev_splits: tuple[str, ...]  # labelled evaluation splits; () for the test-only diagnostics
    submission: str  # leaderboard file name, e.g. "RTE.tsv", "CB.jsonl", "RACE-middle.json"
    official: tuple[str, ...] = ()  # the official files' (and leaderboards') label for each name, where it differs: SST-2 ("0", "1")
