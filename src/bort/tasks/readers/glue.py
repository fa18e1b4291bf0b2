"""GLUE's tab-separated files (``glue_data/<Task>/{train,dev,test}.tsv``) as :class:`Example` rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bort.errors import BortError
from bort.tasks.readers.common import RowError, check_split, empty, existing, parse_label, table_rows, utf8_text
from bort.tasks.spec import Example, TaskSpec


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
        check_split(task, split, ("test",))
        return existing(task, split, folder / "diagnostic.tsv", folder / "AX.tsv")
    if task.name == "glue/mnli":
        check_split(task, split, _MNLI_SPLITS)
        split = {"dev": "dev_matched", "test": "test_matched"}.get(split, split)
    else:
        check_split(task, split, ("train", "dev", "test"))
    return existing(task, split, folder / f"{split}.tsv")


def _tsv_rows(path: Path, header: bool) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of every non-blank line; no quoting, as the GLUE files are written (:func:`table_rows`)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            return table_rows(f, path, "\t", quoting=False, size=path.stat().st_size, header=header)
    except UnicodeDecodeError:
        utf8_text(path)  # the file read whole, only now: its error names the line of the first bad byte
        raise


def read(task: TaskSpec, folder: Path, split: str) -> list[Example]:
    """The examples of one split of a GLUE task, read from its folder ``folder`` (e.g. ``glue_data/RTE``)."""
    fmt = _GLUE[task.name]
    path = _glue_path(task, folder, split)
    test = split.startswith("test")
    headerless = bool(fmt.headerless) and not test
    rows = iter(_tsv_rows(path, header=not headerless))
    line = 1
    if headerless:
        columns = list(fmt.headerless)
    else:
        first = next(rows, None)
        if first is None:
            raise empty(path, 1)
        line, columns = first
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
            label = None if label_col is None else parse_label(task, row[pos[label_col]])
        except RowError as exc:
            raise BortError(f"{path}:{line}: {exc}; fix the row or re-download the file") from None
        idx = row[id_col].strip() if id_col is not None else str(len(examples))
        examples.append(Example(idx=idx, texts=tuple(row[pos[c]] for c in fmt.texts), label=label))
    if not examples:
        raise empty(path, line)
    return examples
