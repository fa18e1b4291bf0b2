"""î(ξ): inference cost of one encoder forward pass, measured or counted (algorithms.md §2).

The latency settings (batch, sequence length, threads, dtype, device) belong to the deployment
target, and are kept apart from any training batch size.
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator

import torch
from transformers import AutoModel, PretrainedConfig

from bort.arch import Arch
from bort.errors import BortError
from bort.models.student import student_config
from bort.options import opt

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class LatencySettings:
    """Where and how î is measured. ``mode='flops'`` counts instead of timing."""

    mode: str = field(default="measured", metadata=opt("î: wall-clock here, or analytic FLOPs", flag="--latency", choices=("measured", "flops")))
    batch: int = field(default=1, metadata=opt("batch size of the latency measurement (not training)"))
    seq: int = field(default=128, metadata=opt("sequence length of the latency measurement"))
    threads: int = field(default=1, metadata=opt("CPU threads of the latency measurement", flag="--threads"))
    dtype: str = field(default="float32", metadata=opt("dtype of the latency measurement", choices=tuple(DTYPES)))
    device: str = field(default="cpu", metadata=opt("device to measure latency on, e.g. cpu or cuda:0"))
    warmup: int = field(default=3, metadata=opt("untimed runs before the timed ones", cli=False))
    runs: int = field(default=15, metadata=opt("timed runs per measurement; the median is kept"))

    def __post_init__(self) -> None:
        if self.mode not in ("measured", "flops"):
            raise BortError(f"--latency must be 'measured' or 'flops', got '{self.mode}'")
        if self.dtype not in DTYPES:
            raise BortError(f"latency dtype '{self.dtype}' is not one of {', '.join(DTYPES)}")
        if min(self.batch, self.seq, self.threads, self.runs) < 1 or self.warmup < 0:
            raise BortError("--latency-batch, --latency-seq, --threads and the number of runs must be at least 1")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BortError(f"latency device '{self.device}' is not available here: use --latency-device cpu, or --latency flops")

    @property
    def key(self) -> str:
        """The cache key of these settings (everything that changes a measurement)."""
        return ",".join(f"{k}={v}" for k, v in asdict(self).items() if k != "mode")

    def device_name(self) -> str:
        """A readable name of the measuring device, recorded with every result."""
        if self.device.startswith("cuda"):
            return f"{self.device} ({torch.cuda.get_device_name(torch.device(self.device))})"
        return f"cpu ({platform.processor() or platform.machine()}, {self.threads} thread(s))"


def flops(arch: Arch, *, seq: int, batch: int = 1) -> int:
    """Analytic FLOPs (2 × multiply-adds) of one encoder forward at sequence length ``seq``.

    Per layer and token: Q, K, V and output projections 4H², attention scores and weighted sum
    2·seq·H, feed-forward 2HI multiply-adds. Embedding lookups, LayerNorm, softmax and biases
    are not matrix products and are left out.
    """
    per_layer = seq * (4 * arch.H * arch.H + 2 * arch.H * arch.I) + 2 * seq * seq * arch.H
    return 2 * batch * arch.D * per_layer


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def measure_latency(config: PretrainedConfig, arch: Arch, settings: LatencySettings, *, repeats: int = 1) -> list[float]:
    """Median wall-clock milliseconds of ``settings.runs`` timed forwards after warm-up.

    The encoder is built with random weights (values do not change the cost). With
    ``repeats > 1`` the whole measurement is repeated on the same model, which is how the
    benchmark reports the spread of the surrogate.
    """
    device = torch.device(settings.device)
    with _threads(settings.threads):
        torch.manual_seed(0)
        model = AutoModel.from_config(student_config(config, arch), add_pooling_layer=False)
        model.to(device=device, dtype=DTYPES[settings.dtype]).eval()
        ids = torch.randint(config.vocab_size, (settings.batch, settings.seq), device=device)
        for _ in range(settings.warmup):
            model(input_ids=ids)
        medians = []
        for _ in range(repeats):
            times = []
            for _ in range(settings.runs):
                _sync(device)
                start = time.perf_counter()
                model(input_ids=ids)
                _sync(device)
                times.append((time.perf_counter() - start) * 1000.0)
            medians.append(statistics.median(times))
    return medians
