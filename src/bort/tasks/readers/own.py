"""A user's own data: CSV, TSV or JSON-lines files (by extension) of text columns and a label column.

:func:`read_rows` reads one file into ``(line, idx, texts, raw label)`` rows; :func:`task_labels` orders the
label names a training file holds; :func:`examples` turns rows into :class:`Example` rows of a task.
:func:`write_rows` writes prediction rows in the same three formats. A bad row raises a one-line
:class:`~bort.errors.BortError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bort.errors import BortError
from bort.tasks.readers.common import RowError, data_file, jsonl_objects, label_name, parse_label, scalar, table_rows, utf8_text
from bort.tasks.spec import Example, TaskSpec

OWN = "own"  # the family of one's own tasks: they are named "own/<training file's stem>"
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
_ID_COLUMNS = ("idx", "id", "index")


@dataclass(frozen=True)
class Row:
    """One example of a file as written: where it is, its id, its texts, and its label as text (None: none given)."""

    line: int
    idx: str
    texts: tuple[str, ...]
    label: object


def file_format(path: Path) -> str:
    """``csv``, ``tsv`` or ``jsonl``, by the file's extension; a :class:`BortError` for any other."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise BortError(f"'{path}': unknown file type '{Path(path).suffix}'; give a .csv, .tsv or .jsonl (JSON lines) file")
    return fmt


def _records(path: Path, text: str, fmt: str) -> list[tuple[int, dict]]:
    """``(line, {column: value})`` of every non-blank record; a header row names the columns of CSV and TSV."""
    if fmt == "jsonl":
        return list(jsonl_objects(text, str(path)))
    rows = table_rows(io.StringIO(text), path, "," if fmt == "csv" else "\t", quoting=True, size=len(text))
    if not rows:
        return []
    (_, header), out = rows[0], []
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise BortError(f"{path}:{line}: {len(row)} columns, the header has {len(header)} ({', '.join(header)[:120]}); fix the row")
        out.append((line, dict(zip(header, row))))
    return out


def _blank(text: str) -> bool:
    """No visible character: only spaces, control and format characters (zero-width spaces, joiners, byte-order marks),
    which tokenizers drop, so the model would see an empty input."""
    return all(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in text)


def read_rows(path: Path, text_columns: Sequence[str], label_column: str | None, *, need_label: bool) -> list[Row]:
    """The rows of the file at ``path``: the ``text_columns`` (non-empty) and ``label_column`` of each.

    ``need_label``: every row must have a label (training and validation files); else a row without
    the column, or with it empty, is unlabelled (None).
    """
    path = Path(path)
    records = _records(path, utf8_text(data_file(path, "pass a .csv, .tsv or .jsonl file")), file_format(path))
    if not records:
        raise BortError(f"{path}:1: no examples in the file (empty, or only a header); give one example per row")
    rows = []
    for line, rec in records:
        missing = [c for c in text_columns if c not in rec] + ([label_column] if need_label and label_column and label_column not in rec else [])
        if missing:
            raise BortError(f"{path}:{line}: no column {', '.join(map(repr, missing))} (found: {', '.join(rec)[:120]}); "
                            "name the columns with --text-columns and --label-column")
        for column in (*text_columns, *([label_column] if label_column in rec else [])):
            try:
                scalar(rec[column])
            except RowError as exc:
                raise BortError(f"{path}:{line}: column '{column}': {exc}; write one text or label per column") from None
        texts = tuple("" if rec[c] is None else str(rec[c]) for c in text_columns)
        empty = [c for c, t in zip(text_columns, texts) if _blank(t)]
        if empty:
            raise BortError(f"{path}:{line}: empty text in column '{empty[0]}'; give every example its text, or remove the row")
        label = rec.get(label_column) if label_column else None
        if label is not None and str(label).strip() == "":
            label = None
        if label is None and need_label:
            raise BortError(f"{path}:{line}: empty label in column '{label_column}'; give every training and validation example its label")
        idx = next((str(rec[c]) for c in _ID_COLUMNS if c in rec and c not in text_columns and c != label_column), str(len(rows)))
        rows.append(Row(line, idx, texts, label))
    return rows


def _number(name: str) -> float | None:
    try:
        number = float(name)
    except ValueError:
        return None
    return number if math.isfinite(number) else None  # "nan" sorts with no order: such names sort as text


def task_labels(path: Path, rows: Sequence[Row]) -> tuple[str, ...]:
    """The label names of the training file at ``path``, sorted (numerically when every name is a number), which fixes
    their ids. Two spellings of one number (``1`` and ``1.0``), or true/false beside numbers, would be two classes where
    the writer meant one: refused, naming the rows."""
    first: dict[str, int] = {}
    for r in rows:
        if r.label is not None:
            first.setdefault(label_name(r.label), r.line)
    names = set(first)
    seen: dict[float, str] = {}
    for name in sorted(names, key=first.get):
        value = _number(name)
        other = seen.setdefault(value, name) if value is not None else None
        if other is not None and other != name:
            raise BortError(f"{path}:{first[name]}: label '{name}' is the number of label '{other}' (line {first[other]}), so one class "
                            "would be two; write each label one way")
    booleans = {n for n in names if n.lower() in ("true", "false")}
    numbers = [n for n in names if _number(n) is not None]
    if booleans and numbers:
        b, n = min(booleans, key=first.get), min(numbers, key=first.get)
        raise BortError(f"{path}:{max(first[b], first[n])}: labels '{b}' (line {first[b]}) and '{n}' (line {first[n]}) mix true/false "
                        "with numbers, so they would be different classes; write each label one way")
    spelled: dict[str, str] = {}
    for name in sorted(names, key=first.get):
        other = spelled.setdefault(unicodedata.normalize("NFKC", name).casefold(), name)
        if other != name:
            raise BortError(f"{path}:{first[name]}: label '{name}' differs from label '{other}' (line {first[other]}) only in case or "
                            "in how its characters are encoded, so one class would be two; write each label one way")
    numeric = len(numbers) == len(names)
    return tuple(sorted(names, key=lambda n: (_number(n), n) if numeric else (0, n)))


def examples(task: TaskSpec, path: Path, rows: Sequence[Row]) -> list[Example]:
    """The rows as examples of ``task``: labels checked against its names, scores parsed (regression)."""
    out = []
    for r in rows:
        try:
            label = None if r.label is None else parse_label(task, r.label)
        except RowError as exc:
            raise BortError(f"{path}:{r.line}: {exc}; fix the row") from None
        out.append(Example(idx=r.idx, texts=r.texts, label=label))
    return out


def write_rows(rows: Sequence[dict], fmt: str) -> str:
    """Prediction rows (dicts of the same keys) as JSON lines, or as CSV or TSV with a header row."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
    keys = list(rows[0]) if rows else []
    writer.writerows([keys, *([r[k] for k in keys] for r in rows)])
    return buf.getvalue()
