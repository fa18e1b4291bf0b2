"""î on ONNX Runtime: a random-weight encoder of shape ξ exported (fp32 or int8) and timed the way `bort bench` times it.

The student ships as an int8 ONNX export, and int8 quantisation speeds wide shapes up more than
narrow ones (docs/BENCHMARKS.md §10.1), so a speed-up budget met on PyTorch eager is not always
met there. This module lets the extraction measure î on the runtime the student will run on.
"""

from __future__ import annotations

import functools
from pathlib import Path

from transformers import PretrainedConfig

from bort.arch import Arch
from bort.atomic import temp_dir
from bort.export.onnx import export_model
from bort.export.runtime import QUANTIZE_OF, OnnxPredictor, sample_inputs
from bort.models.loading import ONNX_FILE, head_by_kind
from bort.models.student import random_encoder
from bort.surrogates.latency import LatencySettings, time_calls


def measure_onnx_latency(config: PretrainedConfig, arch: Arch, settings: LatencySettings, *, work: Path, repeats: int = 1) -> list[float]:
    """Median milliseconds of ``settings.runs`` timed ONNX Runtime calls after warm-up, ``repeats`` times.

    The export lives in a temporary folder inside ``work`` (removed afterwards, and by the next
    writer there if this process is killed). Same inputs as :func:`bort.surrogates.latency.measure_latency`:
    ``settings.batch`` × ``settings.seq`` tokens, no padding.
    """
    quantize = QUANTIZE_OF[settings.runtime]
    model = random_encoder(config, arch)
    model.set_attn_implementation("eager")  # the attention graph ONNX Runtime fuses (see bort.export.onnx)
    head = head_by_kind("encoder")
    with temp_dir(work, "latency") as folder:
        export_model(model, head, folder, quantize=quantize)
        predictor = OnnxPredictor(folder / ONNX_FILE, model.config, head, quantize=quantize, threads=settings.threads)
        inputs = sample_inputs(model.config, head, settings.batch, settings.seq, padded=False)
        medians = time_calls(functools.partial(predictor.run, inputs), settings, repeats=repeats)
        del predictor  # the session holds the graph file open
    return medians
