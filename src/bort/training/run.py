"""The one run scaffold of every stage that trains (pretraining, fine-tuning, Agora, extraction).

A :class:`RunFolder` is a stage's output folder. It checks and locks the folder, records the run's
settings and refuses to resume with other ones, restores the checkpoint of a killed run (trimming
the metric log to it), or starts afresh with a clean log and a seeded RNG. It appends metric lines,
saves checkpoints, tells where a diverged run left its last good state, and keeps the time trained
over every session of a resumed run. With ``--report-to``, the scalars of every evaluation also go
to a tracker (:mod:`bort.training.tracking`): each log line with a ``step``, and what a stage
sends with :meth:`RunFolder.track`. :func:`resolve_device` turns ``--device`` into a device, with
a one-line error for one that is not there.

The rule for every output folder (run folders, ``bort export``, ``bort teacher prepare``) is
:func:`check_out`: bort writes only into a new or empty folder or into its own output of the same
kind, never into or around its input, and never deletes a file it did not write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from tqdm.auto import tqdm

from bort.atomic import LOCK, FolderLock, atomic_write_text, is_temp, lock_kind, recover_dir, remove_leftovers, staged_files
from bort.errors import BortError, TrainingDiverged
from bort.options import opt
from bort.training.checkpoint import GOOD, good_state, load_checkpoint, save_checkpoint
from bort.training.loop import TrainState
from bort.training.tracking import TRACKERS, Tracker, numbers, open_tracker

CHECKPOINT = "checkpoint"
# The options every training stage shares, documented once.
SEED = opt("seed of the initialisation, the batches and dropout")
DEVICE = opt("auto (CUDA when present), cpu, cuda or cuda:N")
BF16 = opt("bfloat16 autocast where the hardware has it", choices=("auto", "on", "off"))
PROGRESS = opt("no progress bars (they go to standard error)")
REPORT_TO = opt("also send the scalars of every evaluation to TensorBoard (OUT/runs/), Weights & Biases or MLflow", choices=TRACKERS)
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


def fingerprint(cfg) -> dict:
    """A config's settings as JSON values, less ``progress`` and ``report_to`` (progress bars and trackers change no
    result): what a resumed run must share."""
    d = dataclasses.asdict(cfg)
    for key in ("progress", "report_to"):
        d.pop(key, None)
    return json.loads(json.dumps(d, default=str))


def check_same_settings(folder: Path, old: dict, new: dict) -> None:
    """Refuse to resume the run in ``folder`` when its stored settings differ from ``new``."""
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        k = diff[0]
        raise BortError(
            f"'{folder}' holds a run with other settings ({k}: {old.get(k)!r} there, {new.get(k)!r} now); "
            "repeat the original command to resume, or choose a new --out folder"
        )


def trim_jsonl(path: Path, upto: int, key: str = "step") -> None:
    """Drop the lines whose ``key`` is past ``upto`` (those after the point a run resumes from: they come again)."""
    if path.is_file():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and json.loads(ln)[key] <= upto]
        atomic_write_text(path, "".join(ln + "\n" for ln in lines))


class Clock:
    """Seconds of work over every session of a resumed run: ``prior`` from the checkpoint, plus this session's."""

    def __init__(self, prior: float = 0.0) -> None:
        self.prior, self.started = prior, time.time()

    def session(self) -> float:
        """Seconds since this session started."""
        return time.time() - self.started

    def __call__(self) -> float:
        return self.prior + self.session()


def check_out(out: str | Path, *, kind: str, marker: str, inputs: tuple[str | Path, ...] = ()) -> Path:
    """Refuse an output folder that bort may not write, with a one-line :class:`BortError`; return it as a path.

    Refused: a file; a folder that is, holds or lies inside one of the ``inputs`` (the model folders a
    stage reads); a non-empty folder that is not the output of a ``kind`` run (``bort export``, …),
    which has ``marker`` or, for a run killed before it wrote that, the lock file of one. Bort's own
    temporaries and lock file do not count as content.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BortError(f"--out '{out}' is a file; give a new or empty folder")
    where = out.resolve()
    for src in inputs:
        src = Path(src).resolve()
        if where == src or src in where.parents or where in src.parents:
            relation = "is" if where == src else "lies inside" if src in where.parents else "holds"
            raise BortError(f"--out '{out}' {relation} the input folder '{src}'; give a new or empty folder outside it")
    if not out.is_dir() or (out / marker).exists() or lock_kind(out) == kind:
        return out
    if any(not is_temp(p.name) and p.name != LOCK for p in out.iterdir()):
        raise BortError(f"--out '{out}' is not empty and has no {marker}, so it is not a `{kind}` folder; give a new or empty folder")
    return out


class OutputFolder:
    """An output folder checked by :func:`check_out`, created if need be, and (with ``lock``) locked for
    this process (:class:`~bort.atomic.FolderLock`) and cleared of the temporaries of killed runs.

    The lock lasts while the object lives: until :meth:`close`, the end of a ``with`` block, its
    garbage collection or the end of the process.
    """

    def __init__(self, out: str | Path, *, kind: str, marker: str, inputs: tuple[str | Path, ...] = (), lock: bool = True) -> None:
        self.path = check_out(out, kind=kind, marker=marker, inputs=inputs)
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
def output_files(out: str | Path, *, kind: str, marker: str, inputs: tuple[str | Path, ...] = ()) -> Iterator[Path]:
    """Yield a temporary folder to fill with a stage's outputs; if the block succeeds, each file is renamed
    into ``out`` (checked and locked as an :class:`OutputFolder`), whose other files stay. If it fails,
    ``out`` is as it was: removed if this call made it."""
    folder = OutputFolder(out, kind=kind, marker=marker, inputs=inputs)
    try:
        with staged_files(folder.path) as tmp:
            yield tmp
    except BaseException:
        if folder.created:
            shutil.rmtree(folder.path, ignore_errors=True)  # only this run's lock and temporaries are in it
        raise
    finally:
        folder.close()


def _empty_tree(path: Path) -> bool:
    """A folder holding nothing but empty folders (Agora's ``rounds/0/`` after its first training was refused)."""
    return path.is_dir() and not path.is_symlink() and all(_empty_tree(p) for p in path.iterdir())


class RunFolder:
    """A stage's output folder: ``<stage>_settings.json``, ``checkpoint/`` and a JSON-lines log (for stages that keep one).

    The folder is an :class:`OutputFolder` of the stage's command whose ``marker`` (default: the
    settings file) says it is one; it stays locked while the object lives (or until :meth:`close`).
    ``main`` is False on the other processes of a data-parallel job: they check the folder and read
    the checkpoint but neither lock nor write. ``report_to`` names the tracker (:data:`~bort.training.tracking.TRACKERS`),
    opened at the first scalars and closed with the folder.
    """

    def __init__(self, out: str | Path, stage: str, *, log: str = "metrics.jsonl", main: bool = True, marker: str | None = None,
                 report_to: str = "none") -> None:
        kind = "bort finetune --agora" if stage == "agora" else f"bort {stage}"  # the command that writes such a folder
        self.folder = OutputFolder(out, kind=kind, marker=marker or f"{stage}_settings.json", lock=main)
        self.out, self.stage, self.main = self.folder.path, stage, main
        self.settings_file = self.out / f"{stage}_settings.json"
        self.checkpoint = self.out / CHECKPOINT
        self.log_file = self.out / log
        self.disposable = {self.settings_file.name, LOCK}  # what a refused first run may leave, and so is removed
        self.report_to, self.settings = report_to, {}
        self.tracker: Tracker | None = None
        self.purge_step: int | None = None  # where a resumed run's scalars start again (they replace the tracker's later ones)
        if main:
            recover_dir(self.checkpoint)  # a kill in the middle of a checkpoint swap

    def close(self) -> None:
        """End the tracker's run (if one was opened) and release the folder's lock."""
        try:
            if self.tracker is not None:
                self.tracker.close()
        finally:
            self.tracker = None
            self.folder.close()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, exc_type, *_) -> None:
        """Release the lock; after a failure, remove the folder if this run made it and it holds nothing but
        :attr:`disposable` files (a run refused before any work leaves nothing behind)."""
        self.close()
        if exc_type is not None and self.main and self.folder.created and self.out.is_dir() and \
                all(p.name in self.disposable or is_temp(p.name) or _empty_tree(p) for p in self.out.iterdir()):
            shutil.rmtree(self.out, ignore_errors=True)

    @property
    def resuming(self) -> bool:
        """Whether a killed run left a checkpoint here."""
        return self.checkpoint.is_dir()

    def guard(self, settings: dict, *, resuming: bool | None = None) -> None:
        """Record the run's settings, or, when resuming (default: a checkpoint is here), refuse other ones."""
        resuming = self.resuming if resuming is None else resuming
        self.settings = settings
        if not self.main:
            return
        if resuming and self.settings_file.is_file():
            check_same_settings(self.out, json.loads(self.settings_file.read_text(encoding="utf-8")), settings)
        else:
            atomic_write_text(self.settings_file, json.dumps(settings, indent=2))

    def resume(self, model: torch.nn.Module, optimizer, scheduler, *, seed: int, total: int) -> tuple[TrainState, dict | None]:
        """The checkpoint's loop state and recipe record, with the log trimmed to it; or, afresh, an empty
        log, the dropout RNG seeded with ``seed``, and ``(TrainState(), None)``."""
        if self.resuming:
            state, extra = load_checkpoint(self.checkpoint, model, optimizer, scheduler)
            if self.main:
                self.trim_log(state.step)
                tqdm.write(f"{self.stage}: resuming from step {state.step} of {total}", file=sys.stderr)
            return state, extra
        if self.main:
            self.log_file.unlink(missing_ok=True)  # lines of a run killed before its first checkpoint
            self.purge_step = 0  # and their scalars in the tracker
        torch.manual_seed(seed)
        return TrainState(), None

    def trim_log(self, upto: int, key: str = "step") -> None:
        """Drop the log lines past ``upto`` (see :func:`trim_jsonl`); the tracker's scalars past it are replaced too."""
        trim_jsonl(self.log_file, upto, key)
        self.purge_step = upto + 1

    def log(self, *lines: dict) -> None:
        """Append lines to the log, and send the scalars of each line with a ``step`` to the tracker."""
        if self.main and lines:
            with open(self.log_file, "a", encoding="utf-8") as f:
                f.writelines(json.dumps(line) + "\n" for line in lines)
            for line in lines:
                if "step" in line:
                    self.track(line, line["step"])

    def track(self, scalars: dict, step: int) -> None:
        """Send the numbers of ``scalars`` (:func:`~bort.training.tracking.numbers`, less ``step``) to the tracker, on the
        main process; the tracker opens at the first call, so a run refused before any work leaves no trace there."""
        if not self.main or self.report_to == "none":
            return
        if self.tracker is None:
            self.tracker = open_tracker(self.report_to, self.out, run_name=f"{self.stage} {self.out.name}", settings=self.settings,
                                        purge_step=self.purge_step)
        self.tracker.log({k: v for k, v in numbers(scalars).items() if k != "step"}, step)

    def save(self, model: torch.nn.Module, optimizer, scheduler, state: TrainState, extra: dict | None = None) -> None:
        """Write the checkpoint (atomically), on the main process only."""
        if self.main:
            save_checkpoint(self.checkpoint, model, optimizer, scheduler, state, extra)

    @contextlib.contextmanager
    def diverged(self, kept: Callable[[], str] | None = None) -> Iterator[None]:
        """Re-raise a :class:`TrainingDiverged` naming the last checkpoint saved before the smoothed loss began to
        rise (``checkpoint/good``), and ``kept()``, if given: what else the run leaves behind to go on from."""
        try:
            yield
        except TrainingDiverged as exc:
            good = good_state(self.checkpoint)
            where = ("no checkpoint was saved before the loss began to rise" if good is None else
                     f"the last checkpoint saved before the loss began to rise (step {good.step}, smoothed loss {good.smooth:.3g}) "
                     f"is kept in {self.checkpoint / GOOD}")
            raise TrainingDiverged("; ".join([str(exc), where, *([kept()] if kept else [])])) from None
