"""The one run scaffold of every stage that trains (pretraining, fine-tuning, Agora, extraction).

A :class:`RunFolder` is a stage's output folder. It checks and locks the folder, records the run's
settings (:func:`fingerprint`, in one spelling, with the digests of the files it reads: :func:`stamp`) and refuses to
resume with other ones or changed inputs, restores the checkpoint of a killed run (trimming
the metric log to it), or starts afresh with a clean log and a seeded RNG. It appends metric lines,
saves checkpoints, tells where a diverged run left its last good state, and keeps the time trained
over every session of a resumed run. With ``--report-to``, scalars also go to trackers (:mod:`bort.training.tracking`):
the training loop's every ``--logging-steps`` (:meth:`RunFolder.trained`), and what a stage sends with
:meth:`RunFolder.track` (its evaluations, as ``eval/…``).

The rule for every output folder (run folders among them) is :func:`bort.shared.check_out`: bort writes only into
a new or empty folder or into its own output of the same kind, never into or around an input of the same command, and
never deletes a file it did not write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from tqdm.auto import tqdm

from bort.atomic import LOCK, atomic_write_text, is_temp, recover_dir
from bort.errors import BortError, TrainingDiverged
from bort.models.card import CARD
from bort.models.loading import MODEL_DIR, model_dir, model_files
from bort.models.sentence import sentence_files
from bort.records import read_json
from bort.shared import LOGGING_EVERY, NO_TRACKER, OutputFolder, resolve_device
from bort.training.checkpoint import GOOD, good_state, load_checkpoint, save_checkpoint
from bort.training.loop import TrainState
from bort.training.tracking import Tracker, check_report_to, numbers, open_tracker

CHECKPOINT = "checkpoint"
def _normal(value, key: str = ""):
    """A setting in its one spelling: an existing path as its absolute resolved path, a ``device`` as the device it resolves
    to here (``auto`` on a CPU-only machine is ``cpu``); dicts and lists element by element."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _normal(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v, key) for v in value]
    if key == "device" and isinstance(value, str):  # one resolve_device refuses stays as it is
        with contextlib.suppress(BortError):
            d = resolve_device(value)
            return "cpu" if d.type == "cpu" else f"{d.type}:{d.index or 0}"
    if isinstance(value, Path) or (isinstance(value, str) and value not in ("", ".") and _exists(value)):
        return str(Path(value).resolve())
    return value


def _exists(text: str) -> bool:
    try:
        return Path(text).exists()
    except (OSError, ValueError):  # a name too long for a path, or holding a NUL: not a path
        return False


def fingerprint(cfg) -> dict:
    """A config's (a dataclass's or a dict's) settings as JSON values in one spelling (:func:`_normal`), less ``progress``,
    ``report_to``, ``logging_steps`` and ``teacher_cache_gb`` (progress bars, trackers and where the teacher's views come from
    change no result): what a resumed run must share. Every stage's settings are built here, and :meth:`RunFolder.guard` adds
    the digests of the files they name (:func:`stamp`)."""
    d = dict(cfg) if isinstance(cfg, dict) else dataclasses.asdict(cfg)
    for key in ("progress", "report_to", "logging_steps", "teacher_cache_gb"):
        d.pop(key, None)
    return json.loads(json.dumps(_normal(d), default=str))


_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) → content digest, within this process


def _digest(path: Path) -> str:
    """The sha256 of a file's content (streamed), cached by its size and modification time."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()[:16]
    return _digests[key]


def _paths(value) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _paths(v)
    elif isinstance(value, list):
        for v in value:
            yield from _paths(v)
    elif isinstance(value, str) and value.startswith("/"):
        yield value


def _counted(files: dict[str, str], path: str) -> dict[str, str]:
    """A folder's ``{file name: digest}`` less its model card (a file named as an input keeps its one entry). The card describes
    the model and changes nothing computed from it (compress re-writes its export's card once the benchmark has timed it, after
    the scoring stage read the folder); older records are read without it (:func:`changed_reads`)."""
    return files if Path(path).name == CARD else {k: v for k, v in files.items() if k != CARD}


def reads(settings: dict, out: Path) -> dict[str, dict[str, str]]:
    """What the run reads, by content: for every existing file or folder that ``settings`` name (less ``out``, what it holds
    and what holds it), ``{file name: digest}`` of the file, or of the folder's own files (a model folder, a task's data;
    a run folder's model, ``model/``), less a folder's model card."""
    out, found = Path(out).resolve(), {}
    for p in map(Path, _paths(settings)):
        if p == out or out in p.parents or p in out.parents or str(p) in found:
            continue
        with contextlib.suppress(OSError):
            if p.is_file():
                files = [p]
            elif p.is_dir():
                files = sorted(f for f in model_dir(p).iterdir() if f.is_file() and f.name != LOCK and not is_temp(f.name))
            else:
                files = []
            found[str(p)] = _counted({f.name: _digest(f) for f in files}, str(p))
    return found


def stamp(settings: dict, out: Path) -> dict:
    """``settings`` as a run folder records them: with the folder (``_folder``, so a copied or moved run folder compares its
    own paths by their place in it) and what the run reads (``_reads``, :func:`reads`)."""
    return {**settings, "_folder": str(Path(out).resolve()), "_reads": reads(settings, out)}


def _same(a, b, here: tuple[str, str]) -> bool:
    """Equal settings, where two paths are equal if they are, or if they lie at the same place in their run folders."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], here) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, here) for x, y in zip(a, b))
    if isinstance(a, str) and isinstance(b, str) and a != b and a.startswith("/") and b.startswith("/"):
        return os.path.relpath(a, here[0]) == os.path.relpath(b, here[1])
    return a == b


def changed_reads(old: dict, new: dict) -> str | None:
    """What changed in the files a run reads (``_reads`` of :func:`stamp`), in words; None if nothing did."""
    here = (old.get("_folder", ""), new.get("_folder", ""))
    before = old.get("_reads") or {}
    for path, files in (new.get("_reads") or {}).items():
        was = next((_counted(f, p) for p, f in before.items() if _same(p, path, here)), None)
        if was is None or was == files:
            continue
        name = next((n for n in sorted(set(was) | set(files)) if was.get(n) != files.get(n)), "")
        what = "is new" if name not in was else "is gone" if name not in files else "content differs"
        where = path if Path(path).name == name else f"{path}/{name}"
        return f"'{where}' changed since this run started ({what})"
    return None


# Settings added to bort after a run may have started: a record without one reads as the value that gives that run's own
# behaviour (issue 37: fine-tuning's gold labels weighed 1 − α_kd before they had --alpha-gold; issue 38: the relations were
# the last layer's before --attn-layers, and K was --augment's alone before --augment-min-inputs).
_ADDED = {"alpha_gold": lambda record: 1.0 - record["alpha_kd"] if "alpha_kd" in record else None,
          "attn_layers": lambda record: 1 if "alpha_attn" in record else None,
          "min_inputs": lambda record: None,  # --augment-min-inputs: unset, K as given
          "inputs_file": lambda record: None,  # --augment-inputs: none
          "inputs_columns": lambda record: None,
          "teacher_lrs": lambda record: [],  # compress's --teacher-lrs: none, the teacher at --lr alone
          "student_lrs": lambda record: [],  # and --student-lrs: the student at --student-lr
          "group_by_length": lambda record: False}  # fine-tuning's --group-by-length: random batches


def _with_added(old, new):
    """``old`` with each :data:`_ADDED` setting that ``new`` has and it lacks, at any depth."""
    if isinstance(old, dict) and isinstance(new, dict):
        filled = {k: _with_added(v, new.get(k)) for k, v in old.items()}
        return {**filled, **{k: fill(old) for k, fill in _ADDED.items() if k in new and k not in old}}
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [_with_added(a, b) for a, b in zip(old, new)]
    return old


def differing(old: dict, new: dict, folder: Path | None = None) -> list[str]:
    """The settings (less :func:`stamp`'s) that differ between two records, sorted; paths inside the run folder (``_folder``,
    else ``folder``) compare by their place in it, and a setting added since the old record was written as :data:`_ADDED`
    says."""
    old = _with_added(old, new)
    here = tuple(d.get("_folder", str(Path(folder or "/").resolve())) for d in (old, new))
    return sorted(k for k in set(old) | set(new) if not k.startswith("_") and not _same(old.get(k), new.get(k), here))


def check_same_settings(folder: Path, old: dict, new: dict) -> None:
    """Refuse to resume the run in ``folder`` when the files it reads changed, or its stored settings differ from ``new``
    (both as :func:`stamp` records them; paths inside the run folder compare by their place in it)."""
    if "_folder" not in old:  # an earlier bort's record: its paths as given (relative to the same working folder), device as named
        old = json.loads(json.dumps(_normal(old), default=str))
    changed = changed_reads(old, new)
    if changed:
        raise BortError(f"{changed}; put it back to resume the run in '{folder}', or choose a new --out folder")
    old = _with_added(old, new)  # a setting added since: the value the old run had (named so in the message)
    diff = differing(old, new, folder)
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


def _empty_tree(path: Path) -> bool:
    """A folder holding nothing but empty folders (Agora's ``rounds/0/`` after its first training was refused)."""
    return path.is_dir() and not path.is_symlink() and all(_empty_tree(p) for p in path.iterdir())


class RunFolder:
    """A stage's output folder: ``<stage>_settings.json``, ``checkpoint/`` and a JSON-lines log (for stages that keep one).

    The folder is an :class:`OutputFolder` of the stage's command whose ``marker`` (default: the
    settings file) says it is one; it stays locked while the object lives (or until :meth:`close`).
    ``inputs``: what the stage reads (model folders, teachers, data files and folders), which the folder may not be,
    hold or lie inside (:func:`~bort.shared.check_out`). ``main`` is False on the other processes of a data-parallel job: they check the folder and read
    the checkpoint but neither lock nor write. ``report_to`` names the trackers (``--report-to``), opened at the first
    scalars and closed with the folder; ``logging_steps``: how often :meth:`trained` sends the training scalars.
    """

    def __init__(self, out: str | Path, stage: str, *, log: str = "metrics.jsonl", main: bool = True, marker: str | None = None,
                 report_to: str | tuple[str, ...] = "none", logging_steps: int = LOGGING_EVERY,
                 inputs: tuple[str | Path | None, ...] = ()) -> None:
        kind = "bort finetune --agora" if stage == "agora" else f"bort {stage}"  # the command that writes such a folder
        self.folder = OutputFolder(out, kind=kind, marker=marker or f"{stage}_settings.json", inputs=inputs, lock=main)
        self.out, self.stage, self.main = self.folder.path, stage, main
        self.settings_file = self.out / f"{stage}_settings.json"
        self.checkpoint = self.out / CHECKPOINT
        self.model = self.out / MODEL_DIR  # the stage's model, where it writes one: the model's files only
        self.log_file = self.out / log
        self.disposable = {self.settings_file.name, LOCK}  # what a refused first run may leave, and so is removed
        self.report_to, self.settings = check_report_to(report_to), {}
        self.logging_steps, self.window = logging_steps, []  # the step losses since the training scalars were last sent
        self.tracker: Tracker | None = None
        self.purge_step: int | None = None  # where a resumed run's scalars start again (they replace the tracker's later ones)
        if main:
            recover_dir(self.checkpoint)  # a kill in the middle of a checkpoint swap
            if self.resuming:
                self._adopt_old_layout()

    def _adopt_old_layout(self) -> None:
        """A killed run of a bort that wrote its model beside the run's files: those files move into ``model/`` (each renamed,
        so a kill here loses nothing), where this run saves its model and the readers look."""
        if not (self.out / "config.json").is_file() or (self.model / "config.json").is_file():
            return
        sentence = {Path(name).parts[0] for name in sentence_files(self.out)}  # modules.json, …, and module folders (1_Pooling/)
        loose = [*model_files(self.out), *(self.out / name for name in sorted({CARD, *sentence}) if (self.out / name).exists())]
        self.model.mkdir(exist_ok=True)
        for f in loose:
            os.replace(f, self.model / f.name)

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
        """Record the run's settings (:func:`stamp`: with the digests of what it reads), or, when resuming (default: a
        checkpoint is here), refuse other ones or changed inputs (:func:`check_same_settings`)."""
        resuming = self.resuming if resuming is None else resuming
        self.settings = settings
        if not self.main:
            return
        stamped = stamp(settings, self.out)
        if resuming and self.settings_file.is_file():
            check_same_settings(self.out, read_json(self.settings_file), stamped)
        else:
            atomic_write_text(self.settings_file, json.dumps(stamped, indent=2))

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
        """Append lines to the log (on the main process)."""
        if self.main and lines:
            with open(self.log_file, "a", encoding="utf-8") as f:
                f.writelines(json.dumps(line) + "\n" for line in lines)

    def track(self, scalars: dict, step: int, prefix: str = "") -> None:
        """Send the numbers of ``scalars`` (:func:`~bort.training.tracking.numbers`, less ``step``), their names after
        ``prefix`` (``eval/``), to the trackers, on the main process; they open at the first call, so a run refused
        before any work leaves no trace there."""
        if not self.main or self.report_to == NO_TRACKER:
            return
        if self.tracker is None:
            self.tracker = open_tracker(self.report_to, self.out, run_name=f"{self.stage} {self.out.name}", settings=self.settings,
                                        purge_step=self.purge_step)
        self.tracker.log({prefix + k: v for k, v in numbers(scalars).items() if k != "step"}, step)

    def trained(self, state: TrainState, loss: float, **scalars: float) -> None:
        """After each optimiser step: every ``logging_steps``, send ``train/loss`` (the mean step loss
        since the last time), ``train/learning_rate``, ``train/grad_norm`` and ``scalars`` (``epoch=…``) to the trackers."""
        self.window.append(loss)
        if state.step % self.logging_steps == 0:
            self.track({"loss": sum(self.window) / len(self.window), "learning_rate": state.lr, "grad_norm": state.grad_norm, **scalars},
                       state.step, prefix="train/")
            self.window.clear()

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
