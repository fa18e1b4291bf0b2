"""Reading a user's YAML file (a space, a hyperparameter grid, a --config file) with one-line errors.

The loader is PyYAML's safe one, stricter in two ways: anchors and aliases (``&a``, ``*a``) are
refused, since a few hundred bytes of nested aliases expand to billions of values (an "alias bomb")
and no bort file needs them; and a key given twice in one mapping is refused, where PyYAML would
keep the last one silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bort.errors import BortError

MAX_BYTES = 1 << 20  # a bort YAML file is a few lines: a bigger one is not one of ours


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without anchors and aliases, and without duplicate keys."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.constructor.ConstructorError(None, None, "anchors and aliases (&name, *name) are not allowed: write the values out",
                                                    event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice: keep one", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, what: str, hint: str) -> Any:
    """Parse a user's YAML file; a missing, oversized or malformed one is a one-line :class:`BortError`."""
    if not path.is_file():
        raise BortError(f"{what} '{path}' does not exist: {hint}")
    if path.stat().st_size > MAX_BYTES:
        raise BortError(f"{what} '{path}' is {path.stat().st_size:,} bytes, over the {MAX_BYTES:,} a bort YAML file may have: {hint}")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BortError(f"cannot parse {what} '{path}': {_problem(exc)}; {hint}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise BortError(f"cannot parse {what} '{path}': its lists or mappings nest too deeply; {hint}") from None


def _problem(exc: Exception) -> str:
    """PyYAML's problem and where it is, on one line (its message also quotes the line, over several)."""
    mark = getattr(exc, "problem_mark", None)
    if getattr(exc, "problem", None) and mark is not None:
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc).splitlines()[0]
