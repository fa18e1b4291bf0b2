"""The GLUE, SuperGLUE and RACE tasks: their registry, and :func:`read_split` over their official distributions.

:data:`TASKS` records each task's kind, label names, official metrics, dev splits and leaderboard file.
:func:`read_split` reads one split of a task's own folder as released (GLUE tab-separated files,
SuperGLUE JSON lines, RACE's folders of one-JSON-object files) into :class:`Example` rows, through the
format readers of :mod:`bort.tasks.readers`. Bad input raises :class:`~bort.errors.BortError`
naming the file, the line and the fix.
"""

from __future__ import annotations

from pathlib import Path

from bort.errors import BortError
from bort.tasks.readers import glue, race, superglue
from bort.tasks.readers.common import jsonl_objects
from bort.tasks.spec import Example, TaskSpec

# Label names and order as Hugging Face `datasets` has them (its glue and super_glue ClassLabel names);
# ``official`` gives the label the official files and leaderboards use for each name, where it differs.
_BIN = ("0", "1")
_BOOL = ("False", "True")
_NLI3 = ("entailment", "neutral", "contradiction")
_NLI2 = ("entailment", "not_entailment")
_ACC = ("accuracy",)


def _task(name: str, labels: tuple[str, ...], metrics: tuple[str, ...], submission: str, kind: str = "classification", dev=("dev",),
          official: tuple[str, ...] = ()) -> TaskSpec:
    return TaskSpec(name=name, kind=kind, labels=labels, metrics=metrics, dev_splits=dev, submission=submission, official=official)


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        _task("glue/cola", ("unacceptable", "acceptable"), ("mcc",), "CoLA.tsv", official=_BIN),
        _task("glue/sst2", ("negative", "positive"), _ACC, "SST-2.tsv", official=_BIN),
        _task("glue/mrpc", ("not_equivalent", "equivalent"), ("f1", "accuracy"), "MRPC.tsv", official=_BIN),
        _task("glue/stsb", (), ("pearson", "spearman"), "STS-B.tsv", kind="regression"),
        _task("glue/qqp", ("not_duplicate", "duplicate"), ("f1", "accuracy"), "QQP.tsv", official=_BIN),
        _task("glue/mnli", _NLI3, _ACC, "MNLI-m.tsv", dev=("dev_matched", "dev_mismatched")),
        _task("glue/qnli", _NLI2, _ACC, "QNLI.tsv"),
        _task("glue/rte", _NLI2, _ACC, "RTE.tsv"),
        _task("glue/wnli", ("not_entailment", "entailment"), _ACC, "WNLI.tsv", official=_BIN),
        _task("glue/ax", _NLI3, ("mcc",), "AX.tsv", dev=()),
        _task("superglue/boolq", _BOOL, _ACC, "BoolQ.jsonl"),
        _task("superglue/cb", ("entailment", "contradiction", "neutral"), ("macro_f1", "accuracy"), "CB.jsonl"),
        _task("superglue/copa", ("choice1", "choice2"), _ACC, "COPA.jsonl", kind="multiple_choice", official=_BIN),
        _task("superglue/multirc", _BOOL, ("f1a", "em"), "MultiRC.jsonl", official=_BIN),
        _task("superglue/record", _BIN, ("record_f1", "record_em"), "ReCoRD.jsonl"),  # a cast: (query, entity) is the answer or not
        _task("superglue/rte", _NLI2, _ACC, "RTE.jsonl"),
        _task("superglue/wic", _BOOL, _ACC, "WiC.jsonl"),
        _task("superglue/wsc", _BOOL, _ACC, "WSC.jsonl"),
        _task("superglue/axb", _NLI2, ("mcc",), "AX-b.jsonl", dev=()),
        _task("superglue/axg", _NLI2, ("gender_parity", "accuracy"), "AX-g.jsonl", dev=()),
        _task("race/middle", ("A", "B", "C", "D"), _ACC, "RACE-middle.json", kind="multiple_choice"),
        _task("race/high", ("A", "B", "C", "D"), _ACC, "RACE-high.json", kind="multiple_choice"),
    )
}


def get_task(name: str) -> TaskSpec:
    """The task called ``name`` (e.g. ``glue/rte``); a :class:`BortError` listing the known ones otherwise."""
    task = TASKS.get(name.strip().lower())
    if task is None:
        raise BortError(f"unknown task '{name}': choose one of {', '.join(TASKS)}")
    return task


def read_split(task: TaskSpec | str, data_dir: str | Path, split: str) -> list[Example]:
    """The examples of one split (``train``, ``dev``, ``test``; MNLI also ``dev_matched``/``dev_mismatched``/``test_mismatched``).

    ``data_dir`` is the task's own folder of the official download (e.g. ``glue_data/RTE``, ``RACE``).
    Labels are read as names (floats for STS-B); unlabelled test rows get ``label=None``.
    """
    spec = get_task(task) if isinstance(task, str) else task
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise BortError(f"data folder '{folder}' for {spec.name} {what}: pass the task's own folder of the official download")
    family = spec.name.split("/")[0]
    return {"glue": glue.read, "superglue": superglue.read, "race": race.read}[family](spec, folder, split)


__all__ = ["TASKS", "Example", "TaskSpec", "get_task", "jsonl_objects", "read_split"]
