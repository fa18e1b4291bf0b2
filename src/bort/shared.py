"""What every command shares: where it may write (issue 36: inputs are read-only), the device it runs on, and the
options several commands take, each documented once (issue 37).

Every output goes through one of these:

* :func:`check_out` / :class:`OutputFolder`: an output folder (run folders, ``bort export``, ``bort bench``,
  ``bort teacher prepare``). Bort writes only into a new or empty folder or into its own output of the same kind,
  never into or around an input of the same command, and never deletes a file it did not write.
* :func:`output_files`: a folder bort rewrites whole (an export, a benchmark, a prepared teacher). The new output is
  built beside it and swapped in, so bort's own earlier output goes (a classifier export into a sentence-transformers
  export's folder keeps none of the encoder's files) and a killed run leaves the old folder as it was. What bort
  wrote is recorded in the folder's :data:`MANIFEST`; a file that is not listed there is the user's, and the
  folder is refused rather than lose it.
* :func:`check_file_out` / :func:`write_file_out`: one output file (``evaluate --predictions PATH``, the predictions
  of a test file). Refused: a path that is, or lies inside, an input; an existing file bort did not write (bort
  records the single files it writes in their folder's :data:`MANIFEST`).

:func:`resolve_device` turns ``--device`` into a device, with a one-line error for one that is not there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from bort.atomic import LOCK, FolderLock, atomic_dir, atomic_write_text, is_temp, lock_kind, previous, recover_dir, remove_leftovers
from bort.errors import BortError
from bort.options import opt

# What bort wrote in a folder: {"kind": the command whose whole output the folder is, or null; "files": that output's
# files (paths relative to the folder); "loose": single files written into the folder by write_file_out}.
MANIFEST = ".bort-files.json"
PathLike = str | Path


def _real(path: Path) -> Path:
    """``path`` with every symlink resolved; a symlink loop is refused in one line."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        raise BortError(f"'{path}' is a symlink loop; give a real path") from None


def check_inputs(path: PathLike, inputs: Iterable[PathLike | None], *, flag: str, fix: str) -> None:
    """Refuse an output ``path`` that is, lies inside or holds one of ``inputs`` (files or folders that the command reads;
    None and names that are not paths, such as a Hub model or ``builtin``, are skipped). ``flag`` names the option in the
    error, ``fix`` says what to give instead."""
    where = _real(Path(path))
    for given in inputs:
        if given is None or str(given) == "" or not Path(given).exists():
            continue
        src = _real(Path(given))
        if where == src or src in where.parents or where in src.parents:
            relation = "is" if where == src else "lies inside" if src in where.parents else "holds"
            what = "folder" if src.is_dir() else "file"
            raise BortError(f"{flag} '{path}' {relation} the input {what} '{src}'; {fix}")


def _manifest(folder: Path) -> dict:
    """The folder's :data:`MANIFEST` (empty when there is none, or it is not bort's JSON)."""
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _files(folder: Path) -> list[str]:
    """Every file (and symlink) under ``folder``, relative to it, less bort's lock file, temporaries and manifest at its top."""
    out = []
    for root, dirs, names in os.walk(folder):
        rel = Path(root).relative_to(folder)
        if rel == Path("."):
            dirs[:] = [d for d in dirs if not is_temp(d)]
            names = [n for n in names if n not in (LOCK, MANIFEST) and not is_temp(n)]
        out += [str(rel / n) for n in names] + [str(rel / d) for d in dirs if (Path(root) / d).is_symlink()]
    return sorted(out)


def foreign(folder: Path, kind: str) -> str | None:
    """The first file under ``folder`` that is not part of bort's earlier ``kind`` output there (None if there is none)."""
    doc = _manifest(folder)
    ours = set(doc.get("files", [])) if doc.get("kind") == kind else set()
    return next((f for f in _files(folder) if f not in ours), None)


def check_out(out: PathLike, *, kind: str, marker: str, inputs: Iterable[PathLike | None] = (), rewrite: bool = False) -> Path:
    """Refuse an output folder that bort may not write, with a one-line :class:`BortError`; return it as a path.

    Refused: a file; a folder that is, holds or lies inside one of the ``inputs`` (what the command reads); a non-empty
    folder that is not the output of a ``kind`` run (``bort export``, …), which has ``marker`` or, for a run killed
    before it wrote that, the lock file of one. Bort's own temporaries and lock file do not count as content. With
    ``rewrite`` (a folder :func:`output_files` replaces whole), also one holding a file that bort's earlier output did
    not include.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BortError(f"--out '{out}' is a file; give a new or empty folder")
    check_inputs(out, inputs, flag="--out", fix="give a new or empty folder outside it")
    if not out.is_dir():
        return out
    if not (out / marker).exists() and lock_kind(out) != kind and any(not is_temp(p.name) and p.name != LOCK for p in out.iterdir()):
        raise BortError(f"--out '{out}' is not empty and has no {marker}, so it is not a `{kind}` folder; give a new or empty folder")
    if rewrite:
        _refuse_foreign(out, kind)
    return out


def _refuse_foreign(out: Path, kind: str) -> None:
    name = foreign(out, kind)
    if name is not None:
        raise BortError(f"--out '{out}' holds '{name}', which is not part of bort's earlier `{kind}` output there and would be lost "
                        "when it is rewritten; move it out, or give a new or empty folder")


class OutputFolder:
    """An output folder checked by :func:`check_out`, created if need be, and (with ``lock``) locked for
    this process (:class:`~bort.atomic.FolderLock`) and cleared of the temporaries of killed runs.

    The lock lasts while the object lives: until :meth:`close`, the end of a ``with`` block, its
    garbage collection or the end of the process.
    """

    def __init__(self, out: PathLike, *, kind: str, marker: str, inputs: Iterable[PathLike | None] = (), lock: bool = True,
                 rewrite: bool = False) -> None:
        self.path = check_out(out, kind=kind, marker=marker, inputs=inputs, rewrite=rewrite)
        self.created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock = FolderLock(self.path, kind) if lock else None
        if lock:
            remove_leftovers(self.path)

    def close(self) -> None:
        """Release the lock (if held)."""
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def output_files(out: PathLike, *, kind: str, marker: str, inputs: Iterable[PathLike | None] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside ``out`` to fill with the whole of a ``kind`` run's output; if the block succeeds,
    it replaces ``out`` in one swap (:func:`~bort.atomic.atomic_dir`), with a :data:`MANIFEST` of its files.

    ``out`` is checked first (:func:`check_out` with ``rewrite``) and locked while the block runs: it must be new, empty or
    bort's earlier ``kind`` output holding nothing else, and is checked again just before the swap (a file the user put
    there meanwhile is kept, and the run refused). If the block fails, ``out`` is as it was: removed if this call made it.
    """
    inputs = tuple(inputs)
    out = _real(Path(out))  # `--out .` is the working folder by its name
    if not out.name:
        raise BortError(f"--out '{out}' is the root of the file system; give a new or empty folder")
    check_inputs(out, inputs, flag="--out", fix="give a new or empty folder outside it")
    check_inputs(previous(out), inputs, flag="--out", fix="give a new or empty folder outside it")  # where the swap keeps the old one
    _check_swap_folder(out, kind)
    recover_dir(out)  # a kill in the middle of an earlier swap: put bort's earlier output back before judging the folder
    folder = OutputFolder(out, kind=kind, marker=marker, inputs=inputs, rewrite=True)
    try:
        with atomic_dir(folder.path) as tmp:
            yield tmp
            _refuse_foreign(folder.path, kind)
            atomic_write_text(tmp / MANIFEST, json.dumps({"kind": kind, "files": _files(tmp), "loose": []}, indent=1) + "\n")
    except BaseException:
        folder.close()
        if folder.created:
            with contextlib.suppress(OSError):
                folder.path.rmdir()  # only if still empty: this run's lock file is gone with the lock
        raise
    finally:
        folder.close()


def _check_swap_folder(out: Path, kind: str) -> None:
    """Refuse a ``.NAME.bort-previous`` beside ``out`` that is not bort's earlier ``kind`` output (a real folder whose
    :data:`MANIFEST` lists all it holds, or that holds nothing but bort's lock): the swap would delete it, or the recovery
    of a killed swap move it to ``out``."""
    prev = previous(out)
    if not (prev.exists() or prev.is_symlink()):
        return
    ours = prev.is_dir() and not prev.is_symlink() and foreign(prev, kind) is None  # bort's output, or its bare lock folder
    if not ours:
        raise BortError(f"'{prev}' is in the way: bort keeps its earlier `{kind}` output there while it swaps in the new one, and this "
                        "is not it; move it away, or give another --out")


def check_file_out(path: PathLike, *, inputs: Iterable[PathLike | None] = (), flag: str = "--out") -> Path:
    """Refuse a path for one output file, with a one-line :class:`BortError` naming ``flag``; return it as a path.

    Refused: a folder; a path that is or lies inside one of ``inputs`` (data files and folders, model folders, configs);
    an existing file that bort did not write (one not recorded in its folder's :data:`MANIFEST`).
    """
    path = Path(path)
    if path.is_dir():
        raise BortError(f"{flag} '{path}' is a folder; give a file name")
    check_inputs(path, inputs, flag=flag, fix="give a path outside it")
    if (path.exists() or path.is_symlink()) and path.name not in _manifest(path.parent).get("loose", []):
        raise BortError(f"{flag} '{path}' exists and bort did not write it; bort never overwrites such a file: remove it, or give a new name")
    return path


def write_file_out(path: PathLike, text: str) -> Path:
    """Write one output file atomically and record it in its folder's :data:`MANIFEST` (so a rerun may replace it);
    the path is checked again (:func:`check_file_out`) just before: a file bort did not write is never replaced."""
    path = check_file_out(path)
    atomic_write_text(path, text)
    doc = _manifest(path.parent)
    if path.name not in doc.get("loose", []):
        doc = {"kind": doc.get("kind"), "files": doc.get("files", []), "loose": sorted({*doc.get("loose", []), path.name})}
        atomic_write_text(path.parent / MANIFEST, json.dumps(doc, indent=1) + "\n")
    return path


# The options several commands share, documented once.
SEED = opt("seed of the initialisation, the batches and dropout")
DEVICE = opt("auto (CUDA when present), cpu, cuda or cuda:N")
BF16 = opt("bfloat16 autocast where the hardware has it", choices=("auto", "on", "off"))
PROGRESS = opt("no progress bars (they go to standard error)")
TRACKERS = ("none", "tensorboard", "wandb", "mlflow")  # --report-to's names, with "all" (bort.training.tracking opens them)
NO_TRACKER = ("none",)  # --report-to's default
REPORT_TO = opt("send the training scalars (train/loss, train/learning_rate, train/grad_norm every --logging-steps), every evaluation "
                "(eval/…) and the settings to TensorBoard (OUT/runs/), Weights & Biases and/or MLflow; several names, or all (those installed)",
                nargs="+", metavar="NAME", aliases=("--report_to",))
LOGGING_STEPS = opt("send the training scalars to the --report-to trackers every N optimiser steps", aliases=("--logging_steps",))
LOGGING_EVERY = 10  # --logging-steps' default (Trainer's is 500: bort's runs are short)
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; refuses a device that is not here."""
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise BortError(f"--device must be auto, cpu, cuda or cuda:N, got '{name}'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            found = f"only {count} CUDA device(s)" if count else "no CUDA device"
            raise BortError(f"--device {name}: this machine has {found}; use --device cpu or auto")
    return torch.device(name)
