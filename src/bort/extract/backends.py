"""Where the candidate trainings of ``bort extract`` run: here, in local worker processes, or on Ray.

Every backend runs the same function, :func:`~bort.extract.trial.run_trial`, on a copy of the driver's prepared
:class:`~bort.surrogates.error.ErrorSurrogate` (the n training batches, the held-out batches and the
teacher's logits, computed once on the driver), and hands each result back to the driver as it
finishes. Only the driver writes the run store. A worker that dies has its training retried, up
to ``retries`` times; results already handed back are never lost.

Each training seeds itself (student init, batches, masks, dropout), so ê does not depend on the
backend, the worker or the order: only on float rounding where thread counts or devices differ.
"""

from __future__ import annotations

import pickle
import signal
import traceback
from collections import Counter, deque
from collections.abc import Iterator
from typing import Protocol

import torch

from bort.errors import BortError
from bort.extract.trial import BackendConfig, Job, Trial, run_trial, setup_worker
from bort.surrogates.error import ErrorSurrogate


class Backend(Protocol):
    def map(self, jobs: list[Job]) -> Iterator[Trial]:
        """Run the jobs; yield each result as it finishes, in any order."""

    def close(self) -> None:
        """Stop the workers (and a Ray cluster this backend started)."""


class InProcess:
    """``--workers 1``: train one job after another in this process, as bort always did."""

    def __init__(self, surrogate: ErrorSurrogate):
        self.surrogate = surrogate

    def map(self, jobs: list[Job]) -> Iterator[Trial]:
        for arch, theta in jobs:
            yield run_trial(self.surrogate, arch, theta)

    def close(self) -> None:
        pass


def open_backend(cfg: BackendConfig, surrogate: ErrorSurrogate, device: str) -> Backend:
    """The backend ``cfg`` names, ready to train; ``device`` is ``--device`` (the local workers' device)."""
    if cfg.kind == "ray":
        from bort.extract.ray_backend import RayPool

        return RayPool(surrogate.prepare(), cfg)
    devices = local_devices(cfg.workers, device)
    if len(devices) == 1:
        return InProcess(surrogate)
    return LocalPool(surrogate.prepare(), devices, cfg)


def local_devices(workers: int | None, device: str) -> list[str]:
    """One device per local worker: with ``--device cuda`` and several GPUs, worker i takes GPU i mod G."""
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    n = workers or max(1, gpus)
    return [f"cuda:{i % gpus}" for i in range(n)] if gpus > 1 else [device] * n


class _Worker:
    """One spawned worker process and the driver's end of its pipe."""

    def __init__(self, ctx, payload: bytes, device: str, cfg: BackendConfig):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_local_worker_main, args=(child, device, cfg.threads), daemon=True)
        self.process.start()
        child.close()
        self.payload = payload

    def send_payload(self) -> None:
        self.conn.send_bytes(self.payload)
        self.payload = b""

    def receive(self) -> tuple | None:
        """The worker's message, or None when it died without one."""
        try:
            return self.conn.recv() if self.conn.poll() else None
        except (EOFError, OSError):
            return None

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _local_worker_main(conn, device: str, threads: int) -> None:
    """A local worker process: receive the surrogate once, then train jobs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle; it stops us
    try:
        surrogate = setup_worker(pickle.loads(conn.recv_bytes()), device, threads)
        while (job := conn.recv()) is not None:
            try:
                message = ("ok", run_trial(surrogate, *job))
            except BortError as exc:
                message = ("error", BortError(str(exc)))
            except Exception:  # noqa: BLE001 - sent to the driver, which raises it with the worker's traceback
                message = ("error", RuntimeError(f"a worker failed:\n{traceback.format_exc()}"))
            conn.send(message)
    except (EOFError, BrokenPipeError):
        pass  # the driver is gone (killed): nothing is left to report to


class LocalPool:
    """``--workers W``: W spawned worker processes on this machine, each sent the prepared surrogate once.

    Its own small pool rather than ``concurrent.futures``: when a process dies, this pool knows
    which job it held and retries just that one (a ProcessPoolExecutor breaks as a whole).
    'spawn' starts clean interpreters, free of the driver's threads and torch state.
    """

    def __init__(self, surrogate: ErrorSurrogate, devices: list[str], cfg: BackendConfig):
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")
        self._payload = pickle.dumps(surrogate, protocol=pickle.HIGHEST_PROTOCOL)
        self._devices, self._cfg = devices, cfg
        self._workers = [self._spawn(d) for d in devices]
        for w in self._workers:  # after every start, so that the workers import torch in parallel
            w.send_payload()

    def _spawn(self, device: str) -> _Worker:
        return _Worker(self._ctx, self._payload, device, self._cfg)

    def map(self, jobs: list[Job]) -> Iterator[Trial]:
        from multiprocessing.connection import wait

        pending, busy, deaths = deque(jobs), {}, Counter()
        while pending or busy:
            for i, w in enumerate(self._workers):
                if i not in busy and pending:
                    busy[i] = pending.popleft()
                    w.conn.send(busy[i])
            wait([h for i in busy for h in (self._workers[i].conn, self._workers[i].process.sentinel)])
            for i in list(busy):
                w = self._workers[i]
                message = w.receive()
                if message is not None:
                    busy.pop(i)
                    status, value = message
                    if status == "error":
                        raise value
                    yield value
                if w.process.is_alive():
                    continue
                # The process is gone: restart it, and retry the job it held (if it held one).
                if i in busy:
                    job = busy.pop(i)
                    deaths[job] += 1
                    if deaths[job] > self._cfg.retries:
                        raise BortError(f"the training of ⟨{job[0].key}⟩ ({job[1].key}) was lost with its worker, {deaths[job]} attempt(s); "
                                        "see the log above, or raise --retries")
                    pending.appendleft(job)
                w.stop()
                self._workers[i] = self._spawn(self._devices[i])
                self._workers[i].send_payload()

    def close(self) -> None:
        for w in self._workers:
            w.stop()
