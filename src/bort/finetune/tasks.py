"""The GLUE, SuperGLUE and RACE tasks: their registry and readers of their official distributions.

:data:`TASKS` records each task's kind, label names, official metrics, dev splits and leaderboard file.
:func:`read_split` reads one split of a task's own folder as released (GLUE tab-separated files,
SuperGLUE JSON lines, RACE's folders of one-JSON-object files) into :class:`Example` rows. Bad input
raises :class:`~bort.errors.BortError` naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bort.errors import BortError


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


_BIN = ("0", "1")
_BOOL = ("False", "True")
_NLI3 = ("contradiction", "entailment", "neutral")
_NLI2 = ("entailment", "not_entailment")
_ACC = ("accuracy",)


def _task(name: str, labels: tuple[str, ...], metrics: tuple[str, ...], submission: str, kind: str = "classification", dev=("dev",)) -> TaskSpec:
    return TaskSpec(name=name, kind=kind, labels=labels, metrics=metrics, dev_splits=dev, submission=submission)


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        _task("glue/cola", _BIN, ("mcc",), "CoLA.tsv"),
        _task("glue/sst2", _BIN, _ACC, "SST-2.tsv"),
        _task("glue/mrpc", _BIN, ("f1", "accuracy"), "MRPC.tsv"),
        _task("glue/stsb", (), ("pearson", "spearman"), "STS-B.tsv", kind="regression"),
        _task("glue/qqp", _BIN, ("f1", "accuracy"), "QQP.tsv"),
        _task("glue/mnli", _NLI3, _ACC, "MNLI-m.tsv", dev=("dev_matched", "dev_mismatched")),
        _task("glue/qnli", _NLI2, _ACC, "QNLI.tsv"),
        _task("glue/rte", _NLI2, _ACC, "RTE.tsv"),
        _task("glue/wnli", _BIN, _ACC, "WNLI.tsv"),
        _task("glue/ax", _NLI3, ("mcc",), "AX.tsv", dev=()),
        _task("superglue/boolq", _BOOL, _ACC, "BoolQ.jsonl"),
        _task("superglue/cb", _NLI3, ("macro_f1", "accuracy"), "CB.jsonl"),
        _task("superglue/copa", _BIN, _ACC, "COPA.jsonl", kind="multiple_choice"),
        _task("superglue/multirc", _BIN, ("f1a", "em"), "MultiRC.jsonl"),
        _task("superglue/record", _BIN, ("record_f1", "record_em"), "ReCoRD.jsonl"),
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
        raise BortError(f"data folder '{folder}' for {spec.name} does not exist: pass the task's own folder of the official download")
    family = spec.name.split("/")[0]
    return {"glue": _read_glue, "superglue": _read_superglue, "race": _read_race}[family](spec, folder, split)


# ------------------------------------------------------------------ shared helpers


class _RowError(Exception):
    """A bad row; the caller adds the file and line number."""


def _check_split(task: TaskSpec, split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise BortError(f"{task.name} has no split '{split}': choose one of {', '.join(allowed)}")


def _existing(task: TaskSpec, split: str, *candidates: Path) -> Path:
    for path in candidates:
        if path.is_file():
            return path
    expected = " or ".join(f"'{p}'" for p in candidates)
    raise BortError(f"{task.name} split '{split}': expected file {expected} does not exist; pass the task's own folder of the official download")


def _label(task: TaskSpec, value: Any) -> str | float:
    """A raw label (str, bool, int, number string) as the task's label name, or a float for regression."""
    if task.kind == "regression":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise _RowError(f"score {str(value)[:40]!r} is not a number") from None
    name = str(value).strip() if isinstance(value, (str, bool, int)) else repr(value)
    if name not in task.labels:
        raise _RowError(f"label {name[:40]!r} is not one of {', '.join(task.labels)} (is this the {task.name} file?)")
    return name


def _empty(path: Path, line: int) -> BortError:
    return BortError(f"{path}:{line}: no examples in the file (empty, or only a header); re-download or re-extract the task")


# ------------------------------------------------------------------ GLUE (tab-separated values)


@dataclass(frozen=True)
class _Tsv:
    texts: tuple[str, ...]  # header names of the text columns
    label: str | None  # header name of the label column (train/dev); None: never labelled
    headerless: tuple[str, ...] = ()  # column names of train/dev files that have no header row (CoLA)
    first_column_is_index: bool = False  # in the test file, the first column is the index whatever its name (MRPC)


_GLUE: dict[str, _Tsv] = {
    "glue/cola": _Tsv(("sentence",), "label", headerless=("source", "label", "original_label", "sentence")),
    "glue/sst2": _Tsv(("sentence",), "label"),
    "glue/mrpc": _Tsv(("#1 String", "#2 String"), "Quality", first_column_is_index=True),
    "glue/stsb": _Tsv(("sentence1", "sentence2"), "score"),
    "glue/qqp": _Tsv(("question1", "question2"), "is_duplicate"),
    "glue/mnli": _Tsv(("sentence1", "sentence2"), "gold_label"),
    "glue/qnli": _Tsv(("question", "sentence"), "label"),
    "glue/rte": _Tsv(("sentence1", "sentence2"), "label"),
    "glue/wnli": _Tsv(("sentence1", "sentence2"), "label"),
    "glue/ax": _Tsv(("sentence1", "sentence2"), None),
}
_MNLI_SPLITS = ("train", "dev", "dev_matched", "dev_mismatched", "test", "test_matched", "test_mismatched")


def _glue_path(task: TaskSpec, folder: Path, split: str) -> Path:
    if task.name == "glue/ax":
        _check_split(task, split, ("test",))
        return _existing(task, split, folder / "diagnostic.tsv", folder / "AX.tsv")
    if task.name == "glue/mnli":
        _check_split(task, split, _MNLI_SPLITS)
        split = {"dev": "dev_matched", "test": "test_matched"}.get(split, split)
    else:
        _check_split(task, split, ("train", "dev", "test"))
    return _existing(task, split, folder / f"{split}.tsv")


def _tsv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of every non-blank line; no quoting, as the GLUE files are written."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError:
                raise BortError(f"{path}:{reader.line_num + 1}: not UTF-8 text; convert the file, e.g. `iconv -f latin1 -t utf-8`") from None
            except csv.Error as exc:
                raise BortError(f"{path}:{reader.line_num}: unreadable row ({exc}); fix or remove the line") from None
            if any(row):
                yield reader.line_num, row


def _read_glue(task: TaskSpec, folder: Path, split: str) -> list[Example]:
    fmt = _GLUE[task.name]
    path = _glue_path(task, folder, split)
    test = split.startswith("test")
    rows = _tsv_rows(path)
    line = 1
    if fmt.headerless and not test:
        columns = list(fmt.headerless)
    else:
        first = next(rows, None)
        if first is None:
            raise _empty(path, 1)
        line, columns = first[0], [c.strip().lstrip("\ufeff") for c in first[1]]
    label_col = None if test else fmt.label
    missing = [c for c in fmt.texts + ((label_col,) if label_col else ()) if c not in columns]
    if missing:
        raise BortError(f"{path}:{line}: header lacks column(s) {', '.join(missing)} (found: {', '.join(columns)}); is this the {task.name} {split} file?")
    pos = {c: i for i, c in enumerate(columns)}
    id_col = pos.get("index", pos.get("id", 0 if test and fmt.first_column_is_index else None))
    examples = []
    for line, row in rows:
        if len(row) != len(columns):
            raise BortError(
                f"{path}:{line}: {len(row)} tab-separated columns, expected {len(columns)} ({', '.join(columns)}); "
                "fix the row (a stray tab or line break inside a text?) or re-download the file"
            )
        try:
            label = None if label_col is None else _label(task, row[pos[label_col]])
        except _RowError as exc:
            raise BortError(f"{path}:{line}: {exc}; fix the row or re-download the file") from None
        idx = row[id_col].strip() if id_col is not None else str(len(examples))
        examples.append(Example(idx=idx, texts=tuple(row[pos[c]] for c in fmt.texts), label=label))
    if not examples:
        raise _empty(path, line)
    return examples


# ------------------------------------------------------------------ SuperGLUE (JSON lines)

_Convert = Callable[[TaskSpec, dict, bool], list[Example]]


def _labelled(task: TaskSpec, obj: dict, need: bool, key: str = "label") -> str | float | None:
    """``obj[key]`` as a label name; None where it is absent and not needed (test splits)."""
    if key not in obj and not need:
        return None
    return _label(task, obj[key])


def _pair(first: str, second: str, group: str = "") -> _Convert:
    def convert(task: TaskSpec, o: dict, need: bool) -> list[Example]:
        texts = (str(o[first]), str(o[second]))
        return [Example(idx=str(o["idx"]), texts=texts, label=_labelled(task, o, need), group=str(o[group]) if group else "")]

    return convert


def _copa(task: TaskSpec, o: dict, need: bool) -> list[Example]:
    question = f"What was the {o['question']}?"
    choices = tuple((o["premise"], f"{question} {o[key]}") for key in ("choice1", "choice2"))
    return [Example(idx=str(o["idx"]), texts=(o["premise"],), label=_labelled(task, o, need), choices=choices)]


def _multirc(task: TaskSpec, o: dict, need: bool) -> list[Example]:
    p, text = o["idx"], o["passage"]["text"]
    out = []
    for q in o["passage"]["questions"]:
        for a in q["answers"]:
            out.append(
                Example(
                    idx=f"{p}-{q['idx']}-{a['idx']}",
                    texts=(text, f"{q['question']} {a['text']}"),
                    label=_labelled(task, a, need),
                    group=f"{p}-{q['idx']}",
                    candidate=str(a["idx"]),
                )
            )
    return out


def _record(task: TaskSpec, o: dict, need: bool) -> list[Example]:
    raw = o["passage"]["text"]
    passage = raw.replace("@highlight\n", ". ")
    entities = list(dict.fromkeys(raw[e["start"] : e["end"] + 1] for e in o["passage"]["entities"]))  # ends are inclusive
    out = []
    for qa in o["qas"]:
        gold = {a["text"] for a in qa["answers"]} if need or "answers" in qa else None
        for j, entity in enumerate(entities):
            label = None if gold is None else ("1" if entity in gold else "0")
            query = qa["query"].replace("@placeholder", entity)
            out.append(Example(idx=f"{qa['idx']}-{j}", texts=(passage, query), label=label, group=str(qa["idx"]), candidate=entity))
    return out


def _wic(task: TaskSpec, o: dict, need: bool) -> list[Example]:
    return [Example(idx=str(o["idx"]), texts=(f"{o['word']}: {o['sentence1']}", o["sentence2"]), label=_labelled(task, o, need))]


def _wsc(task: TaskSpec, o: dict, need: bool) -> list[Example]:
    t = o["target"]
    return [Example(idx=str(o["idx"]), texts=(o["text"], f"{t['span2_text']} refers to {t['span1_text']}"), label=_labelled(task, o, need))]


_SUPERGLUE: dict[str, tuple[str | None, _Convert]] = {  # test-only file name (None: train/val/test.jsonl), converter
    "superglue/boolq": (None, _pair("question", "passage")),
    "superglue/cb": (None, _pair("premise", "hypothesis")),
    "superglue/copa": (None, _copa),
    "superglue/multirc": (None, _multirc),
    "superglue/record": (None, _record),
    "superglue/rte": (None, _pair("premise", "hypothesis")),
    "superglue/wic": (None, _wic),
    "superglue/wsc": (None, _wsc),
    "superglue/axb": ("AX-b.jsonl", _pair("sentence1", "sentence2")),
    "superglue/axg": ("AX-g.jsonl", _pair("premise", "hypothesis", group="pair_id")),
}


def _jsonl_objects(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise BortError(f"{path}:{line}: not UTF-8 text; convert the file, e.g. `iconv -f latin1 -t utf-8`") from None
    yield from jsonl_objects(text, str(path))


def jsonl_objects(text: str, path: str) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` of every non-blank line of JSON-lines ``text`` read from ``path`` (named in errors)."""
    for line, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BortError(f"{path}:{line}: malformed JSON ({exc.msg}, column {exc.colno}); each line must be one complete JSON object") from None
        if not isinstance(obj, dict):
            raise BortError(f"{path}:{line}: expected a JSON object, got {type(obj).__name__}; each line must be one JSON object")
        yield line, obj


def _read_superglue(task: TaskSpec, folder: Path, split: str) -> list[Example]:
    test_file, convert = _SUPERGLUE[task.name]
    if test_file is not None:
        _check_split(task, split, ("test",))
        path = _existing(task, split, folder / test_file)
    else:
        _check_split(task, split, ("train", "dev", "test"))
        path = _existing(task, split, folder / f"{'val' if split == 'dev' else split}.jsonl")
    need = split != "test"
    examples: list[Example] = []
    line = 1
    for line, obj in _jsonl_objects(path):
        try:
            examples.extend(convert(task, obj, need))
        except _RowError as exc:
            raise BortError(f"{path}:{line}: {exc}; fix the line or re-download the file") from None
        except KeyError as exc:
            raise BortError(f"{path}:{line}: missing field {exc}; is this the {task.name} {split} file?") from None
        except (TypeError, AttributeError, IndexError, ValueError) as exc:
            raise BortError(f"{path}:{line}: a field has an unexpected type ({exc}); is this the {task.name} {split} file?") from None
    if not examples:
        raise _empty(path, line)
    return examples


# ------------------------------------------------------------------ RACE (one JSON object per file)


def _race_option(question: str, option: str) -> str:
    return question.replace("_", option) if "_" in question else f"{question} {option}"


def _race_file(task: TaskSpec, path: Path, need: bool) -> list[Example]:
    try:
        o = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise BortError(f"{path}:1: not UTF-8 text; convert the file, e.g. `iconv -f latin1 -t utf-8`") from None
    except json.JSONDecodeError as exc:
        raise BortError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg}, column {exc.colno}); each RACE file must be one JSON object") from None
    try:
        article, questions, options = o["article"], o["questions"], o["options"]
        answers = o["answers"] if need or "answers" in o else [None] * len(questions)
        if not len(questions) == len(options) == len(answers):
            raise _RowError(f"{len(questions)} questions, {len(options)} option lists and {len(answers)} answers; they must match")
        out = []
        for i, (question, opts, answer) in enumerate(zip(questions, options, answers)):
            if len(opts) != len(task.labels):
                raise _RowError(f"question {i} has {len(opts)} options, expected {len(task.labels)}")
            choices = tuple((article, _race_option(question, opt)) for opt in opts)
            label = None if answer is None else _label(task, answer)
            out.append(Example(idx=f"{o.get('id', path.name)}-{i}", texts=(article,), label=label, choices=choices))
    except _RowError as exc:
        raise BortError(f"{path}:1: {exc}; fix the file or re-download RACE") from None
    except KeyError as exc:
        raise BortError(f"{path}:1: missing field {exc}; is this a RACE question file?") from None
    except (TypeError, AttributeError, ValueError) as exc:
        raise BortError(f"{path}:1: a field has an unexpected type ({exc}); is this a RACE question file?") from None
    if not out:
        raise _empty(path, 1)
    return out


def _read_race(task: TaskSpec, folder: Path, split: str) -> list[Example]:
    _check_split(task, split, ("train", "dev", "test"))
    level = task.name.split("/")[1]
    sub = folder / split / level
    if not sub.is_dir():
        raise BortError(f"{task.name} split '{split}': expected folder '{sub}' does not exist; pass the RACE folder (holding train/, dev/, test/)")
    files = sorted(sub.glob("*.txt"))
    if not files:
        raise BortError(f"{task.name} split '{split}': folder '{sub}' holds no *.txt question files; re-extract RACE")
    return [example for path in files for example in _race_file(task, path, need=split != "test")]
