"""Typed results: what the public entries return, written to (and read back from) their JSON files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from bort.atomic import atomic_write_text

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
        """The record in a JSON file written by :meth:`write`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
