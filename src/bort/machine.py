"""What machine a figure was measured on: the CPU's model and the instruction-set flags that change the int8 and bf16
gains (AVX2, AVX-512, VNNI, bf16, AMX), its cores, and the library versions."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def cpu_info() -> dict:
    """The CPU's model name, the flags of :data:`FLAGS` it has, and its cores (from ``/proc/cpuinfo`` where there is one)."""
    model, flags = platform.processor() or platform.machine(), set()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    return {"cpu": model, "flags": [f for f in FLAGS if f in flags], "cores": os.cpu_count()}


def versions() -> dict:
    """The versions of the libraries a figure depends on."""
    import onnxruntime
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "onnxruntime": onnxruntime.__version__}


__all__ = ["FLAGS", "cpu_info", "versions"]
