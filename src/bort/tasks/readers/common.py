"""What the task readers share: the bad-row error, split and file checks, label parsing, JSON lines and delimited tables.

Every reader goes through here for what makes a row ambiguous: a data path that is not a regular file
(:func:`data_file`), a quote that runs over rows or a duplicated header name (:func:`table_rows`), a JSON
object with a duplicated key (:func:`jsonl_objects`), a value that is not one scalar (:func:`scalar`), a
score that is not a finite number (:func:`parse_label`).
"""

from __future__ import annotations

import csv
import json
import math
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bort.errors import BortError
from bort.tasks.spec import TaskSpec


class RowError(Exception):
    """A bad row; the caller adds the file and line number."""


def check_split(task: TaskSpec, split: str, allowed: tuple[str, ...]) -> None:
    """Nothing if ``split`` is one of ``allowed``; a :class:`BortError` listing them otherwise."""
    if split not in allowed:
        raise BortError(f"{task.name} has no split '{split}': choose one of {', '.join(allowed)}")


def data_file(path: Path, fix: str, what: str = "data file") -> Path:
    """``path`` if it is a regular file; else a :class:`BortError` saying what it is (missing, a folder, a FIFO…), then ``fix``;
    ``what`` names the path's role in the message.

    A FIFO or a device is refused before it is opened: reading one would block, or never end.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise BortError(f"{what} '{path}' does not exist; {fix}") from None
    except OSError as exc:  # a symlink loop, a name too long, no permission
        raise BortError(f"{what} '{path}' cannot be read ({exc.strerror}); {fix}") from None
    if stat.S_ISDIR(mode):
        raise BortError(f"{what} '{path}' is a folder, not a file; {fix}")
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise BortError(f"{what} '{path}' is {kind}, not a regular file; {fix}")
    return path


def existing(task: TaskSpec, split: str, *candidates: Path) -> Path:
    """The first of ``candidates`` that exists, checked to be a regular file (:func:`data_file`); a :class:`BortError`
    naming them all when none exists."""
    fix = "pass the task's own folder of the official download"
    for path in candidates:
        if path.exists() or path.is_symlink():
            return data_file(path, fix)
    expected = " or ".join(f"'{p}'" for p in candidates)
    raise BortError(f"{task.name} split '{split}': expected file {expected} does not exist; pass the task's own folder of the official download")


def parse_label(task: TaskSpec, value: Any) -> str | float:
    """A raw label (str, bool, int, number string) as the task's label name, or a float for regression."""
    value = scalar(value)
    if task.kind == "regression":
        try:
            score = float(value)
        except (TypeError, ValueError):
            raise RowError(f"score {str(value)[:40]!r} is not a number") from None
        if not math.isfinite(score):  # float() reads "nan", "inf" and "1e999": none is a score a metric or a loss can use
            raise RowError(f"score {str(value)[:40]!r} is not a finite number")
        return score
    name = label_name(value)
    if name in task.official:  # the official files' label (SST-2 "1") → its name ("positive")
        name = task.labels[task.official.index(name)]
    if name not in task.labels:
        raise RowError(f"label {name[:40]!r} is not one of {', '.join(task.labels)} (is this the {task.name} file?)")
    return name


def label_name(value: Any) -> str:
    """A raw class label as its name: its text (JSON's true/false as ``True``/``False``, the names SuperGLUE's tasks and
    models fine-tuned on one's own JSON lines already use)."""
    return str(value).strip()


def scalar(value: Any) -> Any:
    """``value`` if it is one JSON scalar (text, number, true/false, null); a :class:`RowError` for an object or a list,
    whose Python ``repr`` would otherwise be read as a text or a label, and for a non-finite number."""
    if isinstance(value, (dict, list)):
        kind = "an object" if isinstance(value, dict) else "a list"
        raise RowError(f"the value is {kind} ({json.dumps(value, ensure_ascii=False)[:40]}), not a text, number or label")
    if isinstance(value, float) and not math.isfinite(value):
        raise RowError(f"the value {value} is not a finite number")
    return value


def empty(path: Path, line: int) -> BortError:
    """The error for a file with no examples, to raise at ``path:line``."""
    return BortError(f"{path}:{line}: no examples in the file (empty, or only a header); re-download or re-extract the task")


def jsonl_file_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` of every non-blank line of the JSON-lines file at ``path``."""
    yield from jsonl_objects(utf8_text(path), str(path))


def utf8_text(path: Path) -> str:
    """The text of the file at ``path``; a :class:`BortError` naming the line of its first byte that is not UTF-8."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BortError(f"{path}:{line}: not UTF-8 text; convert the file, e.g. `iconv -f latin1 -t utf-8`") from None


def jsonl_objects(text: str, path: str) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` of every non-blank line of JSON-lines ``text`` read from ``path`` (named in errors)."""
    for line, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw, object_pairs_hook=_unique_keys)
        except RowError as exc:
            raise BortError(f"{path}:{line}: {exc}; give each key once") from None
        except json.JSONDecodeError as exc:
            raise BortError(f"{path}:{line}: malformed JSON ({exc.msg}, column {exc.colno}); each line must be one complete JSON object") from None
        if not isinstance(obj, dict):
            raise BortError(f"{path}:{line}: expected a JSON object, got {type(obj).__name__}; each line must be one JSON object")
        if "\\ud" in raw.lower():  # a \uD800–\uDFFF escape: fine in a pair, but a lone one is no character and breaks tokenizers
            try:
                json.dumps(obj, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError as exc:
                raise BortError(f"{path}:{line}: a lone surrogate escape (\\u{ord(exc.object[exc.start]):04x}) is not a character; "
                                "write the character itself, or its full surrogate pair") from None
        yield line, obj


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object's pairs as a dict; a :class:`RowError` for a key given twice (``json`` would keep the last silently)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise RowError(f"key {twice[:40]!r} appears twice in one object")
    return obj


# What to do about each of Python csv's errors, by a piece of its message.
_CSV_FIXES = {"expected after": 'a quote inside a field: quote the whole field and double the quotes inside it ("" for ")',
              "new-line character": "a carriage return inside a field: quote the field, or remove the carriage return",
              "NUL": "a NUL byte in the line: remove it (is this a text file?)"}


def table_rows(lines: Iterable[str], path: Path, delimiter: str, *, quoting: bool, size: int, header: bool = True) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of every non-blank record of a delimited file (CSV, TSV) read from ``lines``;
    with ``header``, the first is its header row: its names stripped, and refused where one is given twice.

    ``quoting``: a field may be quoted (``"a, b"``, with ``""`` for a quote), and in CSV run over lines; a quote
    anywhere else in a field, or one never closed, is refused rather than read as a guess. A TSV holds one record
    per line, so a quoted field that runs over lines (a stray quote, which would swallow the rows after it) is refused.
    Without ``quoting`` (GLUE's files) a quote is a character like any other. ``size``: the file's length,
    the longest field it can hold (Python's csv refuses fields over 128 KB by default).
    """
    old = csv.field_size_limit(max(size, csv.field_size_limit()))
    try:
        reader = csv.reader(lines, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE, strict=quoting)
        out, start = [], 1
        try:
            for row in reader:
                if reader.line_num > start and delimiter == "\t" and quoting:
                    raise BortError(f"{path}:{start}: a quoted field runs from this line to line {reader.line_num}; a TSV holds one "
                                    "example per line: remove the stray quote (or quote the whole text and double its quotes)")
                if any(cell.strip() for cell in row):
                    out.append((start, row))
                start = reader.line_num + 1  # a quoted cell may span lines: the next record starts after this one
        except csv.Error as exc:
            if "end of data" in str(exc):
                raise BortError(f"{path}:{start}: a quote opened on this line is never closed; remove the stray quote, "
                                "or close it") from None
            fix = next((f for key, f in _CSV_FIXES.items() if key in str(exc)), "fix or remove the line")
            raise BortError(f"{path}:{reader.line_num}: unreadable row ({exc}); {fix}") from None
    finally:
        csv.field_size_limit(old)
    if out and header:
        names = [c.strip().lstrip("\ufeff") for c in out[0][1]]
        twice = sorted({c for c in names if names.count(c) > 1})
        if twice:
            raise BortError(f"{path}:{out[0][0]}: the header names column(s) {', '.join(map(repr, twice))} more than once; "
                            "give every column its own name")
        out[0] = (out[0][0], names)
    return out
