"""Sending a run's scalars to experiment trackers: ``--report-to tensorboard wandb mlflow``, ``all`` or ``none``.

A :class:`Tracker` takes ``log(scalars, step)`` and ``close()``; :func:`open_tracker` opens the ones named (several
go to each: :class:`Trackers`). ``none`` (the default) sends nothing; ``all`` is every tracker whose package is
installed, as Trainer's ``report_to="all"``. The names are Trainer's: ``train/loss``, ``train/learning_rate`` and
``train/grad_norm`` every ``--logging-steps``, ``eval/<metric>`` and ``eval/loss`` at evaluations; the run's settings
once, at the start. TensorBoard writes event files under ``OUT/runs/`` (``tensorboard --logdir OUT``); W&B and
MLflow send to wherever their own settings point (``WANDB_*``, ``MLFLOW_TRACKING_URI``), one run per session.
:func:`check_report_to` refuses an unknown name, or a tracker whose package is missing, at config time, before any work.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from bort.errors import BortError
from bort.shared import TRACKERS

RUNS = "runs"  # TensorBoard's folder inside OUT
ALL = "all"
# The package each tracker needs, as `pip install` names it (W&B's reinit="create_new" came in 0.19.10).
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "'wandb>=0.19.10'"), "mlflow": ("mlflow", "mlflow")}


def _installed(name: str) -> bool:
    return importlib.util.find_spec(_PACKAGES[name][0]) is not None


def check_report_to(names: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``--report-to``'s names as a tuple (one name may come as a string); refuses an unknown name, ``none`` or ``all``
    beside others, or a tracker whose package is not installed, with a one-line :class:`BortError` naming the fix."""
    names = (names,) if isinstance(names, str) else tuple(names)
    for name in names:
        if name not in (*TRACKERS, ALL):
            raise BortError(f"--report-to takes {', '.join(TRACKERS)} or {ALL}, got '{name}'")
    if not names or (len(names) > 1 and ({"none", ALL} & set(names))):
        raise BortError(f"--report-to takes none, all, or one or more of {', '.join(TRACKERS[1:])}; got '{' '.join(names)}'")
    for name in names:
        if name in _PACKAGES and not _installed(name):
            module, spec = _PACKAGES[name]
            raise BortError(f"--report-to {name} needs the {module} package: run `pip install {spec}` (or install bort[{name}]), "
                            "or use --report-to none")
    return names


def check_tracking(cfg) -> None:
    """A stage config's tracking options, in its ``__post_init__``: ``report_to`` checked and made a tuple
    (:func:`check_report_to`), and ``logging_steps``, where the stage has it, at least 1."""
    object.__setattr__(cfg, "report_to", check_report_to(cfg.report_to))  # frozen configs: one name may come as a string
    if getattr(cfg, "logging_steps", 1) < 1:
        raise BortError(f"--logging-steps must be 1 or more, got {cfg.logging_steps}")


def chosen(names: tuple[str, ...]) -> tuple[str, ...]:
    """The trackers ``names`` stands for: ``all`` as the installed ones, ``none`` as none, duplicates once."""
    if names == (ALL,):
        return tuple(name for name in _PACKAGES if _installed(name))
    return tuple(dict.fromkeys(name for name in names if name != "none"))


def numbers(line: dict) -> dict[str, float]:
    """The scalars of a log line: its int and float values (not booleans, not nested values)."""
    return {k: float(v) for k, v in line.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _flat(settings: dict, prefix: str = "") -> dict[str, str | int | float | bool]:
    """Nested settings as ``{"optim.lr": 0.0005, …}``: numbers and switches as they are, anything else as text (at most
    500 characters): the run parameters MLflow and TensorBoard's HPARAMS record."""
    out = {}
    for k, v in settings.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, int | float | bool) else str(v)[:500]
    return out


class Tracker:
    """``--report-to none``: sends nothing. The others override :meth:`log` and :meth:`close`."""

    def log(self, scalars: dict[str, float], step: int) -> None:
        """Send ``scalars`` (name → number) at ``step``."""

    def close(self) -> None:
        """Flush and end the run."""


class Trackers(Tracker):
    """Several trackers at once (``--report-to tensorboard wandb``): each gets every call."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    def log(self, scalars: dict[str, float], step: int) -> None:
        for tracker in self.trackers:
            tracker.log(scalars, step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


class TensorBoard(Tracker):
    """Event files in ``OUT/runs/``, the settings once as text and as HPARAMS. A resumed run appends to them:
    ``purge_step`` hides the events at or past the step it resumes from, which come again, so no step is shown twice."""

    def __init__(self, out: Path, settings: dict, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.writer = SummaryWriter(str(Path(out) / RUNS), purge_step=purge_step)
        self.writer.add_text("settings", f"```\n{json.dumps(settings, indent=2, default=str)}\n```")
        # Into this run's own file: SummaryWriter.add_hparams would write them to a new run folder of their own.
        for summary in hparams(_flat(settings), {}):
            self.writer._get_file_writer().add_summary(summary)

    def log(self, scalars: dict[str, float], step: int) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()  # on disk at once, for a TensorBoard watching the run

    def close(self) -> None:
        self.writer.close()


class WandB(Tracker):
    """A Weights & Biases run in project ``bort``, named after the stage and the folder, with the run's settings as its config."""

    def __init__(self, out: Path, name: str, settings: dict) -> None:
        import wandb

        # create_new: Agora's rounds fine-tune (each its own run) while Agora's own run stays open.
        self.run = wandb.init(project="bort", name=name, dir=str(out), config=settings, reinit="create_new")

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


class MLflow(Tracker):
    """An MLflow run in experiment ``bort``, named after the stage and the folder, with the run's settings as parameters.

    Through ``MlflowClient``, not ``mlflow.start_run``: that keeps one global active run, and Agora's
    rounds each open their own run while Agora's stays open.
    """

    def __init__(self, name: str, settings: dict) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        experiment = self.client.get_experiment_by_name("bort")
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment("bort")
        self.run_id = self.client.create_run(experiment_id, run_name=name).info.run_id
        params = [Param(k, str(v)) for k, v in _flat(settings).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters a batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log(self, scalars: dict[str, float], step: int) -> None:
        for name, value in scalars.items():
            self.client.log_metric(self.run_id, name, value, step=step)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def open_tracker(names: tuple[str, ...], out: Path, *, run_name: str, settings: dict | None = None, purge_step: int | None = None) -> Tracker:
    """The trackers ``names`` stands for (:func:`chosen`) for the run folder ``out``, as one :class:`Tracker`, each sent
    ``settings`` once; ``purge_step``: the step a resumed run redoes from (TensorBoard)."""
    opened: list[Tracker] = []
    for name in chosen(check_report_to(names)):
        try:
            if name == "tensorboard":
                opened.append(TensorBoard(out, settings or {}, purge_step))
            elif name == "wandb":
                opened.append(WandB(out, run_name, settings or {}))
            else:
                opened.append(MLflow(run_name, settings or {}))
        except Exception as exc:  # noqa: BLE001 - each library raises its own types (not logged in, server down, …)
            Trackers(opened).close()
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise BortError(f"--report-to {name}: cannot start a run ({reason}); set the tracker up (e.g. `wandb login`, "
                            "MLFLOW_TRACKING_URI) or leave it out of --report-to") from None
    return opened[0] if len(opened) == 1 else Trackers(opened)  # none (all, with no tracker installed): sends nothing
