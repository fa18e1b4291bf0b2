"""Test hooks for the scale-out backends, kept out of bort itself.

A backend pickles the surrogate it is given to its workers, and each worker trains a job by calling
``surrogate(arch, theta)``; so a test that hands a backend a :class:`CrashOnce` kills a worker
process mid-run with no hook in production code. Workers import this module by name: local
workers are spawned with the test process's ``sys.path`` (which pytest gives ``tests/``), and the
tests' Ray cluster puts ``tests/`` on its workers' path.
"""

from __future__ import annotations

import os
from pathlib import Path

from bort.arch import Arch
from bort.surrogates.error import ErrorSurrogate
from bort.training.hparams import Theta


class CrashOnce(ErrorSurrogate):
    """The wrapped surrogate, except that the first worker process to start ξ creates ``marker`` and dies.

    The worker exits abruptly (``os._exit``, no clean-up), as a killed or crashed node would; the
    retry finds ``marker`` and trains normally. The process that wrapped it (the driver) never
    crashes, so the in-process backend trains as usual.
    """

    arch_key: str
    marker: str
    driver_pid: int

    @classmethod
    def wrap(cls, surrogate: ErrorSurrogate, arch_key: str, marker: Path) -> CrashOnce:
        """A shallow copy of ``surrogate`` (prepared or not) that crashes once on ``arch_key``."""
        crashing = cls.__new__(cls)
        crashing.__dict__.update(surrogate.__dict__)
        crashing.arch_key, crashing.marker, crashing.driver_pid = arch_key, str(marker), os.getpid()
        return crashing

    def __call__(self, arch: Arch, theta: Theta) -> float:
        """Die on the first attempt at ``arch_key`` in a worker process; otherwise train as the surrogate does."""
        if arch.key == self.arch_key and os.getpid() != self.driver_pid:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return super().__call__(arch, theta)
