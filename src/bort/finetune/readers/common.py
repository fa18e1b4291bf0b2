"""What the task readers share: the bad-row error, split and file checks, label parsing and JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bort.errors import BortError
from bort.finetune.spec import TaskSpec


class RowError(Exception):
    """A bad row; the caller adds the file and line number."""


def check_split(task: TaskSpec, split: str, allowed: tuple[str, ...]) -> None:
    """Nothing if ``split`` is one of ``allowed``; a :class:`BortError` listing them otherwise."""
    if split not in allowed:
        raise BortError(f"{task.name} has no split '{split}': choose one of {', '.join(allowed)}")


def existing(task: TaskSpec, split: str, *candidates: Path) -> Path:
    """The first of ``candidates`` that is a file; a :class:`BortError` naming them all when none is."""
    for path in candidates:
        if path.is_file():
            return path
    expected = " or ".join(f"'{p}'" for p in candidates)
    raise BortError(f"{task.name} split '{split}': expected file {expected} does not exist; pass the task's own folder of the official download")


def parse_label(task: TaskSpec, value: Any) -> str | float:
    """A raw label (str, bool, int, number string) as the task's label name, or a float for regression."""
    if task.kind == "regression":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise RowError(f"score {str(value)[:40]!r} is not a number") from None
    name = str(value).strip() if isinstance(value, (str, bool, int)) else repr(value)
    if name in task.official:  # the official files' label (SST-2 "1") → its name ("positive")
        name = task.labels[task.official.index(name)]
    if name not in task.labels:
        raise RowError(f"label {name[:40]!r} is not one of {', '.join(task.labels)} (is this the {task.name} file?)")
    return name


def empty(path: Path, line: int) -> BortError:
    """The error for a file with no examples, to raise at ``path:line``."""
    return BortError(f"{path}:{line}: no examples in the file (empty, or only a header); re-download or re-extract the task")


def jsonl_file_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` of every non-blank line of the JSON-lines file at ``path``."""
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
