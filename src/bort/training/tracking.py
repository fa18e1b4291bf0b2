"""Sending a run's scalars to an experiment tracker: ``--report-to tensorboard|wandb|mlflow|none``.

A :class:`Tracker` takes ``log(scalars, step)`` at every evaluation and ``close()`` at the end;
:func:`open_tracker` picks one by name. ``none`` (the default) sends nothing. TensorBoard writes
event files under ``OUT/runs/`` (``tensorboard --logdir OUT``); W&B and MLflow send to wherever
their own settings point (``WANDB_*``, ``MLFLOW_TRACKING_URI``), one run per session. Each is
used only where its package is installed: :func:`check_report_to` names the package to install,
at config time, before any work.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bort.errors import BortError
from bort.shared import TRACKERS

RUNS = "runs"  # TensorBoard's folder inside OUT
# The package each tracker needs, as `pip install` names it (W&B's reinit="create_new" came in 0.19.10).
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "'wandb>=0.19.10'"), "mlflow": ("mlflow", "mlflow")}


def check_report_to(name: str) -> None:
    """Refuse an unknown tracker, or one whose package is not installed, with a one-line :class:`BortError` naming the fix."""
    if name not in TRACKERS:
        raise BortError(f"--report-to must be one of {', '.join(TRACKERS)}, got '{name}'")
    if name in _PACKAGES:
        module, spec = _PACKAGES[name]
        if importlib.util.find_spec(module) is None:
            raise BortError(f"--report-to {name} needs the {module} package: run `pip install {spec}` (or install bort[{name}]), "
                            "or use --report-to none")


def numbers(line: dict) -> dict[str, float]:
    """The scalars of a log line: its int and float values (not booleans, not nested values)."""
    return {k: float(v) for k, v in line.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _flat(settings: dict, prefix: str = "") -> dict[str, str]:
    """Nested settings as ``{"optim.lr": "0.0005", …}``: the run parameters MLflow records."""
    out = {}
    for k, v in settings.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": str(v)[:500]})
    return out


class Tracker:
    """``--report-to none``: sends nothing. The others override :meth:`log` and :meth:`close`."""

    def log(self, scalars: dict[str, float], step: int) -> None:
        """Send ``scalars`` (name → number) at ``step``."""

    def close(self) -> None:
        """Flush and end the run."""


class TensorBoard(Tracker):
    """Event files in ``OUT/runs/``. A resumed run appends to them: ``purge_step`` hides the events at or past
    the step it resumes from, which come again, so no step is shown twice."""

    def __init__(self, out: Path, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(out) / RUNS), purge_step=purge_step)

    def log(self, scalars: dict[str, float], step: int) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()  # each evaluation is on disk at once, for a TensorBoard watching the run

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
        params = [Param(k, v) for k, v in _flat(settings).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters a batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log(self, scalars: dict[str, float], step: int) -> None:
        for name, value in scalars.items():
            self.client.log_metric(self.run_id, name, value, step=step)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def open_tracker(name: str, out: Path, *, run_name: str, settings: dict | None = None, purge_step: int | None = None) -> Tracker:
    """The tracker ``name`` (one of :data:`TRACKERS`) for the run folder ``out``; ``purge_step``: the step a resumed run redoes from (TensorBoard)."""
    check_report_to(name)
    try:
        if name == "tensorboard":
            return TensorBoard(out, purge_step)
        if name == "wandb":
            return WandB(out, run_name, settings or {})
        if name == "mlflow":
            return MLflow(run_name, settings or {})
    except Exception as exc:  # noqa: BLE001 - each library raises its own types (not logged in, server down, …)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BortError(f"--report-to {name}: cannot start a run ({reason}); set the tracker up (e.g. `wandb login`, "
                        "MLFLOW_TRACKING_URI) or use --report-to none") from None
    return Tracker()
