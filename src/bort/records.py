"""Typed results: what the public entries return, written to (and read back from) their JSON files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from bort.atomic import atomic_write_text
from bort.errors import BortError, shown

R = TypeVar("R", bound="Record")


def jsonable(value: Any) -> Any:
    """``value`` with paths as strings and nested records as dicts, ready for ``json.dumps``."""
    return json.loads(json.dumps(value, default=lambda o: o.to_dict() if isinstance(o, Record) else str(o)))


class Record:
    """A dataclass mixin: ``to_dict`` and ``write`` give today's JSON file, ``from_dict`` and ``read`` read it back."""

    def to_dict(self) -> dict:
        """The fields in their declared order, as JSON values."""
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[R], data: dict) -> R:
        """The record of a dict written by :meth:`to_dict` (keys it does not know are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def write(self, path: Path) -> None:
        """Write the record as indented JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read(cls: type[R], path: Path) -> R:
        """The record in a JSON file written by :meth:`write`; a damaged one is a :class:`BortError` naming it."""
        data = read_json(path, dict)
        try:
            return cls.from_dict(data)
        except TypeError as exc:  # a field missing: a file from elsewhere, or edited by hand
            raise damaged(path, str(exc)) from None


def read_json(path: str | Path, kind: type = dict) -> Any:
    """The JSON value of one of bort's own run files, which must be a ``kind``; else a :class:`BortError` naming the file.

    Every reader of a run record goes through here, so a truncated or edited file (a kill cannot leave
    one: they are written atomically) is one line that says what to do, not a traceback.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise damaged(path, f"not JSON: {exc}") from None
    if not isinstance(data, kind):
        raise damaged(path, f"a JSON {type(data).__name__}, not a {kind.__name__}")
    return data


def damaged(path: str | Path, why: str) -> BortError:
    """The error for a damaged run file: bort wrote it whole, so someone changed it."""
    return BortError(f"{shown(path)} is damaged ({why}); remove it, or give a new --out")
