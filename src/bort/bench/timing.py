"""î on ONNX Runtime, and any runtime's shapes timed side by side.

The student ships as an int8 ONNX export, and int8 quantisation speeds wide shapes up more than
narrow ones (docs/BENCHMARKS.md §10.1), so a speed-up budget met on PyTorch eager is not always
met there. :func:`measure_onnx_latency` lets the extraction measure î on the runtime the student
will run on: a random-weight model of shape ξ (and the head it ships with) exported (fp32 or
int8) and timed the way `bort bench` times it. :func:`time_side_by_side` times several shapes in interleaved rounds, which is how
a speed-up between two of them is read when it must hold (``bort compress``'s pick).
"""

from __future__ import annotations

import contextlib
import functools
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path

from transformers import PretrainedConfig

from bort.arch import Arch
from bort.atomic import temp_dir
from bort.export.onnx import export_model
from bort.models.loading import ONNX_FILE, head_by_kind
from bort.models.runtime import QUANTIZE_OF, OnnxPredictor, sample_inputs
from bort.models.student import random_encoder
from bort.surrogates.latency import LatencySettings, time_calls, torch_forward, torch_threads


@contextlib.contextmanager
def _onnx_call(config: PretrainedConfig, arch: Arch, settings: LatencySettings, work: Path) -> Iterator[Callable[[], object]]:
    """One ONNX Runtime call of a random-weight model of shape ξ (and ``settings.head``), exported into a temporary
    folder in ``work`` that is removed when the block ends (and by the next writer there if this process is killed).
    ``settings.batch`` × ``settings.seq`` tokens, no padding, as :func:`bort.surrogates.latency.measure_latency` feeds."""
    quantize = QUANTIZE_OF[settings.runtime]
    model = random_encoder(config, arch, head=settings.head)
    model.set_attn_implementation("eager")  # the attention graph ONNX Runtime fuses (see bort.export.onnx)
    head = head_by_kind(settings.head)
    with temp_dir(work, "latency") as folder:
        export_model(model, head, folder, quantize=quantize)
        predictor = OnnxPredictor(folder / ONNX_FILE, model.config, head, quantize=quantize, threads=settings.threads)
        inputs = sample_inputs(model.config, head, settings.batch, settings.seq, padded=False)
        yield functools.partial(predictor.run, inputs)
        del predictor  # the session holds the graph file open


def measure_onnx_latency(config: PretrainedConfig, arch: Arch, settings: LatencySettings, *, work: Path, repeats: int = 1) -> list[float]:
    """Median milliseconds of ``settings.runs`` timed ONNX Runtime calls after warm-up, ``repeats`` times."""
    with _onnx_call(config, arch, settings, work) as call:
        return time_calls(call, settings, repeats=repeats)


def time_side_by_side(config: PretrainedConfig, archs: list[Arch], settings: LatencySettings, *, work: Path, rounds: int = 5) -> list[float]:
    """Median milliseconds of each ξ of ``archs`` on ``settings.runtime`` (every ξ exported where it is ONNX Runtime).

    The shapes are timed in ``rounds`` rounds, each a :func:`~bort.surrogates.latency.time_calls` of
    every shape in an order that rotates from round to round, and each shape keeps the median of its
    rounds. A machine's speed drifts by 20% and more over minutes here (the teacher's int8 latency
    read 5.2 to 6.3 ms on one day, BENCHMARKS §10.3), so a ratio of two shapes timed minutes apart
    carries that drift, and one of shapes timed in the same rounds does not.
    """
    with contextlib.ExitStack() as stack, torch_threads(settings.threads):
        if settings.runtime == "torch":
            calls = [torch_forward(config, a, settings) for a in archs]
        else:
            calls = [stack.enter_context(_onnx_call(config, a, settings, work)) for a in archs]
        times: list[list[float]] = [[] for _ in archs]
        for r in range(rounds):
            for k in range(len(archs)):  # each round starts one shape later
                i = (k + r) % len(archs)
                times[i].extend(time_calls(calls[i], settings))
        return [statistics.median(t) for t in times]
