"""What every training backend shares: its settings, the job and result types, and the per-job work.

:mod:`bort.extract.backends` (in-process and local worker processes) and
:mod:`bort.extract.ray_backend` both import from here, never from each other: a worker process or
a Ray task sets itself up with :func:`setup_worker` and trains each job with :func:`run_trial`.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import time
from dataclasses import dataclass, field

import torch

from bort.arch import Arch
from bort.errors import BortError
from bort.options import opt
from bort.surrogates.error import ErrorSurrogate
from bort.training.hparams import Theta

BACKENDS = ("local", "ray")

Job = tuple[Arch, Theta]


@dataclass(frozen=True)
class BackendConfig:
    """``--backend``, ``--workers``, ``--address``, ``--gpus-per-trial``, ``--retries``, ``--worker-threads``.

    ``workers`` is the number of local worker processes (default: one per GPU with ``--device
    cuda``, else 1, which trains in this process as before) or, for Ray, the most trainings in
    flight at once (default: as many as the cluster's resources take).
    """

    kind: str = field(default="local", metadata=opt("where candidates train: local worker processes, or a Ray cluster (pip install 'ray>=2.9')",
                                                     flag="--backend", choices=BACKENDS))
    workers: int | None = field(default=None, metadata=opt("local: worker processes (default 1, in-process; with --device cuda one per GPU); "
                                                           "ray: most trainings in flight (default: as the cluster's resources allow)"))
    address: str | None = field(default=None, metadata=opt("ray: the cluster to join, e.g. auto or HEAD_IP:6379 (default: start a local one)"))
    gpus_per_trial: float = field(default=0.0, metadata=opt("ray: GPUs per candidate training, may be fractional (0: CPU)"))
    retries: int = field(default=2, metadata=opt("retries of a training whose worker died"))
    threads: int = field(default=1, metadata=opt("torch threads (and Ray CPUs) per candidate training", flag="--worker-threads"))

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise BortError(f"--backend must be one of {', '.join(BACKENDS)}, got '{self.kind}'")
        if self.workers is not None and self.workers < 1:
            raise BortError(f"--workers must be at least 1, got {self.workers}")
        if self.retries < 0 or self.threads < 1 or self.gpus_per_trial < 0:
            raise BortError("--retries must be 0 or more, --worker-threads at least 1 and --gpus-per-trial 0 or more")
        if self.kind == "local" and (self.address is not None or self.gpus_per_trial):
            raise BortError("--address and --gpus-per-trial are for --backend ray; locally, --device cuda puts one worker on each GPU")
        if self.kind == "ray" and importlib.util.find_spec("ray") is None:
            raise BortError("--backend ray needs Ray: run `pip install 'ray>=2.9'` (or install bort[ray]), or use --backend local")

    def describe(self) -> dict:
        """What result.json records about where the trainings ran."""
        return {"kind": self.kind, "workers": self.workers, "address": self.address, "gpus_per_trial": self.gpus_per_trial, "threads": self.threads}


@dataclass(frozen=True)
class Trial:
    """One finished (ξ, θ) training, as a worker hands it back; ``worker`` is host:pid/device.

    ``cpu_seconds`` (this process's CPU time) against ``seconds`` (wall) shows how much of a core
    the training got: on a shared machine, the benchmark's measure of contention.
    """

    arch: Arch
    theta: Theta
    error: float
    seconds: float
    cpu_seconds: float
    worker: str


def setup_worker(surrogate: ErrorSurrogate, device: str, threads: int) -> ErrorSurrogate:
    """A worker's one-time set-up: its thread count and its device."""
    torch.set_num_threads(threads)
    return surrogate.to(device)


def run_trial(surrogate: ErrorSurrogate, arch: Arch, theta: Theta) -> Trial:
    """Train ξ with θ for n steps and return ê: the one per-candidate function of every backend."""
    start, cpu = time.time(), time.process_time()
    error = surrogate(arch, theta)
    return Trial(arch, theta, error, time.time() - start, time.process_time() - cpu, f"{socket.gethostname()}:{os.getpid()}/{surrogate.device}")
