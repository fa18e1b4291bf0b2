"""Reading a user's YAML file (a space, a hyperparameter grid, a --config file) with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bort.errors import BortError


def read_yaml(path: Path, what: str, hint: str) -> Any:
    """Parse a user's YAML file; a missing or malformed one is a one-line :class:`BortError`."""
    if not path.is_file():
        raise BortError(f"{what} '{path}' does not exist: {hint}")
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BortError(f"cannot parse {what} '{path}': {str(exc).splitlines()[0]}; {hint}") from None
