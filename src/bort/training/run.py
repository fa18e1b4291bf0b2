"""The one run scaffold of every stage that trains (pretraining, fine-tuning, Agora, extraction).

A :class:`RunFolder` is a stage's output folder. It checks the folder, records the run's settings
and refuses to resume with other ones, restores the checkpoint of a killed run (trimming the
metric log to it), or starts afresh with a clean log and a seeded RNG. It appends metric lines,
saves checkpoints, tells where a diverged run left its last good state, and keeps the time trained
over every session of a resumed run. :func:`resolve_device` turns ``--device`` into a device, with
a one-line error for one that is not there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from tqdm.auto import tqdm

from bort.atomic import atomic_write_text
from bort.errors import BortError, TrainingDiverged
from bort.options import opt
from bort.training.checkpoint import load_checkpoint, save_checkpoint
from bort.training.loop import TrainState

CHECKPOINT = "checkpoint"
# The options every training stage shares, documented once.
SEED = opt("seed of the initialisation, the batches and dropout")
DEVICE = opt("auto (CUDA when present), cpu, cuda or cuda:N")
BF16 = opt("bfloat16 autocast where the hardware has it", choices=("auto", "on", "off"))
PROGRESS = opt("no progress bars (they go to standard error)")
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
    """A config's settings as JSON values, less ``progress`` (progress bars change no result): what a resumed run must share."""
    d = dataclasses.asdict(cfg)
    d.pop("progress", None)
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


class RunFolder:
    """A stage's output folder: ``<stage>_settings.json``, ``checkpoint/`` and a JSON-lines log (for stages that keep one).

    ``main`` is False on the other processes of a data-parallel job: they read the checkpoint but
    write nothing.
    """

    def __init__(self, out: str | Path, stage: str, *, log: str = "metrics.jsonl", main: bool = True) -> None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise BortError(f"--out '{out}' is a file: give a folder")
        out.mkdir(parents=True, exist_ok=True)
        self.out, self.stage, self.main = out, stage, main
        self.settings_file = out / f"{stage}_settings.json"
        self.checkpoint = out / CHECKPOINT
        self.log_file = out / log

    @property
    def resuming(self) -> bool:
        """Whether a killed run left a checkpoint here."""
        return self.checkpoint.is_dir()

    def guard(self, settings: dict, *, resuming: bool | None = None) -> None:
        """Record the run's settings, or, when resuming (default: a checkpoint is here), refuse other ones."""
        resuming = self.resuming if resuming is None else resuming
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
        torch.manual_seed(seed)
        return TrainState(), None

    def trim_log(self, upto: int, key: str = "step") -> None:
        """Drop the log lines past ``upto`` (see :func:`trim_jsonl`)."""
        trim_jsonl(self.log_file, upto, key)

    def log(self, *lines: dict) -> None:
        """Append lines to the log."""
        if self.main and lines:
            with open(self.log_file, "a", encoding="utf-8") as f:
                f.writelines(json.dumps(line) + "\n" for line in lines)

    def save(self, model: torch.nn.Module, optimizer, scheduler, state: TrainState, extra: dict | None = None) -> None:
        """Write the checkpoint (atomically), on the main process only."""
        if self.main:
            save_checkpoint(self.checkpoint, model, optimizer, scheduler, state, extra)

    @contextlib.contextmanager
    def diverged(self, kept: Callable[[], str]) -> Iterator[None]:
        """Re-raise a :class:`TrainingDiverged` with ``kept()``: what the run leaves behind to go on from."""
        try:
            yield
        except TrainingDiverged as exc:
            raise TrainingDiverged(f"{exc}; {kept()}") from None
