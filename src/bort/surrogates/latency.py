"""î(ξ): inference cost of one encoder forward pass, measured or counted (algorithms.md §2).

The latency settings (runtime, batch, sequence length, threads, dtype, device) belong to the
deployment target, and are kept apart from any training batch size. On PyTorch every ξ is timed; on
ONNX Runtime (:mod:`bort.bench.timing`) each ξ must be exported first, so only the shallowest and
deepest ξ of each width are timed and the depths between are interpolated (:func:`interpolate_depths`).
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from transformers import PretrainedConfig

from bort.arch import Arch
from bort.errors import BortError
from bort.models.student import random_encoder
from bort.options import opt

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
HEAD_KINDS = ("encoder", "classification", "multiple_choice")  # the tops a student ships with (bort.models.loading.HEADS)
# The runtimes î can be measured on: PyTorch eager (where the student trains), and ONNX Runtime fp32 and int8
# (where `bort export` ships it; bort.bench.timing). The names are `bort bench`'s.
RUNTIMES = {"torch": "PyTorch eager", "onnx-fp32": "ONNX Runtime fp32", "onnx-int8": "ONNX Runtime int8"}
# Below this share of a core per timed thread, other processes took the CPU while we timed: the clock then counts their
# time, not the model's (BENCHMARKS §11.1: at nice 10 beside two busy processes, î came out 10× too large, in 40 ms steps).
MIN_CPU_SHARE = 0.8
_contention_reported = False


@dataclass(frozen=True)
class LatencySettings:
    """Where and how î is measured. ``mode='flops'`` counts instead of timing."""

    mode: str = field(default="measured", metadata=opt("î: wall-clock here, or analytic FLOPs", flag="--latency", choices=("measured", "flops")))
    batch: int = field(default=1, metadata=opt("batch size of the latency measurement (not training)"))
    seq: int = field(default=128, metadata=opt("sequence length of the latency measurement"))
    runtime: str = field(default="torch", metadata=opt("runtime of the latency measurement: PyTorch eager, or ONNX Runtime on the CPU "
                                                       "(each width's shallowest and deepest ξ exported and timed, the depths between "
                                                       "interpolated)", choices=tuple(RUNTIMES)))
    # docs/design.md: bort's export of a task student computes its last layer for the first token only, which saves a larger
    # share of a shallow student's time than of the teacher's; î of the model that ships is the head's.
    head: str = field(default="encoder", metadata=opt("the top of the timed model: the bare encoder, or the task head the student "
                                                      "will ship with", choices=HEAD_KINDS))
    threads: int = field(default=1, metadata=opt("CPU threads of the latency measurement", flag="--threads"))
    dtype: str = field(default="float32", metadata=opt("dtype of the latency measurement", choices=tuple(DTYPES)))
    device: str = field(default="cpu", metadata=opt("device to measure latency on, e.g. cpu or cuda:0"))
    warmup: int = field(default=3, metadata=opt("untimed runs before the timed ones", cli=False))
    runs: int = field(default=15, metadata=opt("timed runs per measurement; the median is kept"))

    def __post_init__(self) -> None:
        if self.mode not in ("measured", "flops"):
            raise BortError(f"--latency must be 'measured' or 'flops', got '{self.mode}'")
        if self.runtime not in RUNTIMES:
            raise BortError(f"--latency-runtime must be one of {', '.join(RUNTIMES)}, got '{self.runtime}'")
        if self.runtime != "torch" and (self.device != "cpu" or self.dtype != "float32"):
            raise BortError(f"--latency-runtime {self.runtime} runs on the CPU in float32 (int8 is the export's quantisation): "
                            "drop --latency-device and --latency-dtype, or use --latency-runtime torch")
        if self.head not in HEAD_KINDS:
            raise BortError(f"--latency-head must be one of {', '.join(HEAD_KINDS)}, got '{self.head}'")
        if self.dtype not in DTYPES:
            raise BortError(f"latency dtype '{self.dtype}' is not one of {', '.join(DTYPES)}")
        if min(self.batch, self.seq, self.threads, self.runs) < 1 or self.warmup < 0:
            raise BortError("--latency-batch, --latency-seq, --threads and the number of runs must be at least 1")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BortError(f"latency device '{self.device}' is not available here: use --latency-device cpu, or --latency flops")

    @property
    def key(self) -> str:
        """The cache key of these settings (everything that changes a measurement; the default head left out, as in
        stores written before heads were timed)."""
        return ",".join(f"{k}={v}" for k, v in asdict(self).items() if k != "mode" and (k, v) != ("head", "encoder"))

    @property
    def runtime_name(self) -> str:
        """What î is, in words: "PyTorch eager float32", "ONNX Runtime int8" (", classification head" where not the bare encoder), or "FLOPs"."""
        if self.mode == "flops":
            return "FLOPs"
        name = f"{RUNTIMES[self.runtime]} {self.dtype}" if self.runtime == "torch" else RUNTIMES[self.runtime]
        return name if self.head == "encoder" else f"{name}, {self.head.replace('_', ' ')} head"

    def device_name(self) -> str:
        """A readable name of the measuring device (and runtime, where not PyTorch), recorded with every result."""
        if self.device.startswith("cuda"):
            return f"{self.device} ({torch.cuda.get_device_name(torch.device(self.device))})"
        runtime = "" if self.runtime == "torch" else f"{RUNTIMES[self.runtime]}, "
        return f"cpu ({runtime}{platform.processor() or platform.machine()}, {self.threads} thread(s))"


def depth_anchors(archs: Iterable[Arch]) -> list[Arch]:
    """The shallowest and the deepest ξ of each width ⟨A, H, I⟩ among ``archs``: the ones timed where ξ costs an export."""
    by_width: dict[tuple[int, int, int], list[Arch]] = {}
    for a in archs:
        by_width.setdefault((a.A, a.H, a.I), []).append(a)
    return sorted({x for group in by_width.values() for x in (min(group, key=lambda a: a.D), max(group, key=lambda a: a.D))},
                  key=lambda a: a.key)


def interpolate_depths(archs: Iterable[Arch], measured: dict[Arch, float]) -> dict[Arch, float]:
    """î for every ξ of ``archs`` from its width's anchors in ``measured``, linear in the depth D.

    An encoder's cost is a fixed part (embeddings, the runtime's call) plus D equal layers, so it is
    linear in D. Timing every ξ on ONNX Runtime would need an export of each (1–8 s apiece here); the
    anchors need two per width, and the interpolation error is measured in docs/BENCHMARKS.md §10.2.
    """
    out = {}
    for a in archs:
        if a in measured:
            out[a] = measured[a]
            continue
        same = [m for m in measured if (m.A, m.H, m.I) == (a.A, a.H, a.I)]
        lo, hi = min(same, key=lambda m: m.D), max(same, key=lambda m: m.D)
        out[a] = measured[lo] + (measured[hi] - measured[lo]) * (a.D - lo.D) / (hi.D - lo.D)
    return out


def flops(arch: Arch, *, seq: int, batch: int = 1) -> int:
    """Analytic FLOPs (2 × multiply-adds) of one encoder forward at sequence length ``seq``.

    Per layer and token: Q, K, V and output projections 4H², attention scores and weighted sum
    2·seq·H, feed-forward 2HI multiply-adds. Embedding lookups, LayerNorm, softmax and biases
    are not matrix products and are left out.
    """
    per_layer = seq * (4 * arch.H * arch.H + 2 * arch.H * arch.I) + 2 * seq * seq * arch.H
    return 2 * batch * arch.D * per_layer


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """PyTorch's intra-op threads set to ``n`` inside the block, restored after it."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(call: Callable[[], object], settings: LatencySettings, *, repeats: int = 1) -> list[float]:
    """``settings.warmup`` untimed calls, then ``repeats`` times the median milliseconds of ``settings.runs`` timed ones.

    ``call`` returns once its work is done (on CUDA, :func:`torch_forward` synchronises).
    """
    for _ in range(settings.warmup):
        call()
    medians = []
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        times = []
        for _ in range(settings.runs):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000.0)
        medians.append(statistics.median(times))
    if settings.device == "cpu":
        report_contention((time.process_time() - cpu) / ((time.perf_counter() - wall) * settings.threads))
    return medians


def report_contention(share: float) -> None:
    """Say once per process, on stderr, that a CPU timing got less than :data:`MIN_CPU_SHARE` of its cores.

    ``share`` is the process's CPU seconds over wall seconds × timed threads: about 1 on an idle machine.
    """
    global _contention_reported
    if share < MIN_CPU_SHARE and not _contention_reported:
        _contention_reported = True
        print(f"bort: warning: latency was timed with {share:.0%} of a core per thread (other processes were running), so "
              "the milliseconds are inflated; time on an idle machine, or give the run its own cores (taskset)", file=sys.stderr)


def torch_forward(config: PretrainedConfig, arch: Arch, settings: LatencySettings) -> Callable[[], None]:
    """One timed call: a forward of a random-weight model of shape ξ (and ``settings.head``) on ``settings``' device and dtype, ``settings.batch``
    × ``settings.seq`` tokens, finished on the device when it returns (values do not change the cost)."""
    device = torch.device(settings.device)
    model = random_encoder(config, arch, head=settings.head).to(device=device, dtype=DTYPES[settings.dtype])
    choices = (2,) if settings.head == "multiple_choice" else ()  # two choices per example, as bort.models.runtime.sample_inputs
    ids = torch.randint(config.vocab_size, (settings.batch, *choices, settings.seq), device=device)

    @torch.inference_mode()
    def call() -> None:
        model(input_ids=ids)
        _sync(device)

    return call


def measure_latency(config: PretrainedConfig, arch: Arch, settings: LatencySettings, *, repeats: int = 1) -> list[float]:
    """Median wall-clock milliseconds of ``settings.runs`` timed PyTorch forwards after warm-up.

    With ``repeats > 1`` the whole measurement is repeated on the same model, which is how the
    benchmark reports the spread of the surrogate.
    """
    with torch_threads(settings.threads):
        call = torch_forward(config, arch, settings)
        return time_calls(call, settings, repeats=repeats)
