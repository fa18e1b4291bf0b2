"""Small helpers: reading YAML inputs with one-line errors, and writing outputs atomically."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

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


def guard_settings(path: Path, settings: dict, *, resuming: bool) -> None:
    """Record a run's settings in ``path``, or, when ``resuming``, refuse settings other than those recorded."""
    if resuming and path.is_file():
        check_same_settings(path.parent, json.loads(path.read_text(encoding="utf-8")), settings)
    else:
        atomic_write_text(path, json.dumps(settings, indent=2))


def trim_jsonl(path: Path, step: int, key: str = "step") -> None:
    """Drop the lines whose ``key`` is past ``step`` (those after the checkpoint a run resumes from: they come again)."""
    if path.is_file():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and json.loads(ln)[key] <= step]
        atomic_write_text(path, "".join(ln + "\n" for ln in lines))


def check_same_settings(folder: Path, old: dict, new: dict) -> None:
    """Refuse to resume the run in ``folder`` when its stored settings differ from ``new``."""
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        k = diff[0]
        raise BortError(
            f"'{folder}' holds a run with other settings ({k}: {old.get(k)!r} there, {new.get(k)!r} now); "
            "repeat the original command to resume, or choose a new --out folder"
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_files(folder: Path) -> Iterator[Path]:
    """Yield a temporary folder inside ``folder`` to fill; if the block succeeds, each of its files is
    renamed into ``folder``. No file is ever half-written, and the folder's other files stay."""
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".staged."))
    try:
        yield tmp
        for f in tmp.iterdir():
            os.replace(f, folder / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; it replaces the folder ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
