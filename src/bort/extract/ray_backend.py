"""``--backend ray``: each candidate training is a Ray task with the requested CPUs and GPUs.

The driver connects to a running cluster (``--address``, or ``auto``), joins one that this
process already started (``ray.init`` before :func:`bort.extract.extract`), or starts a local one.
The prepared surrogate is put in the object store once; each worker process fetches it on its
first task and keeps it. Ray retries a task whose worker process or node dies (``max_retries``);
the driver stores every result as it arrives, so a later failure loses none of them.

bort must be installed, at the same version, on every node: the tasks import it.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Iterator

from bort.arch import Arch
from bort.errors import BortError
from bort.extract.trial import BackendConfig, Job, Trial, run_trial, setup_worker
from bort.surrogates.error import ErrorSurrogate
from bort.training.hparams import Theta


def check_address(address: str | None) -> None:
    """Fail at once when ``--address HOST:PORT`` does not answer: Ray itself retries for minutes."""
    if address is None or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise BortError(f"nothing answers at --address {address} ({exc}); give the head's HOST:PORT (`ray start --head --port 6379` "
                        "prints it), or auto on a cluster node") from None


# One worker process's copy of the surrogate, by object id: fetched and set up once, not per task.
_WORKER_STATE: dict[str, ErrorSurrogate] = {}


def _ray_trial(box: list, device: str, threads: int, arch: Arch, theta: Theta) -> Trial:
    """One Ray task. The object ref comes boxed in a list so that Ray passes the ref, not a fresh copy per task."""
    import ray

    ref = box[0]
    if ref.hex() not in _WORKER_STATE:
        _WORKER_STATE.clear()
        _WORKER_STATE[ref.hex()] = setup_worker(ray.get(ref), device, threads)
    return run_trial(_WORKER_STATE[ref.hex()], arch, theta)


class RayPool:
    """Trainings as Ray tasks; ``cfg.workers`` caps how many are in flight (default: all of a phase)."""

    def __init__(self, surrogate: ErrorSurrogate, cfg: BackendConfig):
        import ray

        self._ray, self._cfg = ray, cfg
        self._started = not ray.is_initialized()
        if self._started:
            self._init()
        # With GPUs, Ray sets each task's CUDA_VISIBLE_DEVICES, so "cuda" is the task's own GPU.
        self._device = "cuda" if cfg.gpus_per_trial > 0 else "cpu"
        self._task = ray.remote(_ray_trial).options(
            num_cpus=cfg.threads, num_gpus=cfg.gpus_per_trial, max_retries=cfg.retries, retry_exceptions=False
        )
        if cfg.gpus_per_trial > ray.cluster_resources().get("GPU", 0):
            self.close()
            raise BortError(f"--gpus-per-trial {cfg.gpus_per_trial:g} is more than the Ray cluster's GPUs; add GPU nodes or lower it")
        self._ref = ray.put(surrogate)

    def _init(self) -> None:
        ray, cfg = self._ray, self._cfg
        try:
            if cfg.address is None:  # a fresh single-machine cluster, gone when the run ends
                ray.init(num_cpus=(cfg.workers or 0) * cfg.threads or None, include_dashboard=False, logging_level="warning")
            else:
                ray.init(address=cfg.address, logging_level="warning")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BortError(f"cannot reach the Ray cluster at --address {cfg.address} ({reason[:160]}); "
                            "start it with `ray start --head`, or drop --address for a local one") from None

    def map(self, jobs: list[Job]) -> Iterator[Trial]:
        ray = self._ray
        pending, in_flight = deque(jobs), {}
        cap = self._cfg.workers or len(jobs)
        while pending or in_flight:
            while pending and len(in_flight) < cap:
                arch, theta = job = pending.popleft()
                in_flight[self._task.remote([self._ref], self._device, self._cfg.threads, arch, theta)] = job
            [done], _ = ray.wait(list(in_flight), num_returns=1)
            arch, theta = in_flight.pop(done)
            try:
                trial = ray.get(done)
            except ray.exceptions.RayTaskError as exc:  # the training itself raised: no retry would help
                if isinstance(exc.cause, BortError):
                    raise BortError(str(exc.cause)) from None
                raise
            except ray.exceptions.RayError as exc:  # workers or nodes died more than --retries times
                raise BortError(f"the training of ⟨{arch.key}⟩ ({theta.key}) was lost with its worker, {self._cfg.retries + 1} attempt(s) "
                                f"on the Ray cluster ({type(exc).__name__}); check the nodes' logs, or raise --retries") from None
            yield trial

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
