"""î on PyTorch eager against î on ONNX Runtime int8, over MiniLM's `auto` space (docs/BENCHMARKS.md §10.2).

    python benchmarks/latency_bench.py [--out benchmarks/out/latency] [--check-widths 8]

Measures, at batch 1 × 128 tokens, 1 thread, as `bort extract` does:
- î on PyTorch eager for the teacher and every shape of the space;
- î on ONNX Runtime int8 for the teacher and each width's shallowest and deepest shape (what
  `bort extract --latency-runtime onnx-int8` times), and for every depth of ``--check-widths``
  widths spread over the space, to measure the error of the interpolation in depth;
- which shapes are ≥ 4× (and 8×) faster than the teacher by each runtime, and where they differ.
Resumable: every measurement is kept in OUT/measured.json as it is made. Writes OUT/summary.md and OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from datetime import datetime, timezone
from pathlib import Path

from common import OUT

from bort.arch import Arch
from bort.atomic import atomic_write_text
from bort.bench.timing import measure_onnx_latency
from bort.extract.space import load_space
from bort.models.families import config_arch
from bort.models.loading import read_config, resolve_model_path
from bort.surrogates.latency import LatencySettings, depth_anchors, interpolate_depths, measure_latency
from bort.surrogates.params import count_params

BUDGETS = (4.0, 8.0)


def _measured(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"torch": {}, "onnx-int8": {}}


def _save(path: Path, doc: dict) -> None:
    atomic_write_text(path, json.dumps(doc, indent=1))


def _cpu_flags() -> str:
    flags = set()
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8") if f in flags) or "none of avx2/avx512"


def main() -> None:
    """Measure (or resume), then compare the two runtimes' î and the interpolation's error."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT / "latency")
    ap.add_argument("--check-widths", type=int, default=8, help="widths whose every depth is timed on int8, to check the interpolation")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "measured.json"
    doc = _measured(store)
    config = read_config(resolve_model_path("minilm-l6"))
    T = config_arch(config)
    archs = load_space("auto", T).archs(exclude=T)
    widths = sorted({(a.A, a.H, a.I) for a in archs})
    step = max(1, len(widths) // args.check_widths)
    checked = set(widths[::step][: args.check_widths])
    int8_timed = [T, *depth_anchors(archs), *(a for a in archs if (a.A, a.H, a.I) in checked)]
    jobs = [("torch", a) for a in [T, *archs]] + [("onnx-int8", a) for a in dict.fromkeys(int8_timed)]
    settings = {"torch": LatencySettings(), "onnx-int8": LatencySettings(runtime="onnx-int8")}
    for i, (runtime, a) in enumerate(jobs):
        if a.key in doc[runtime]:
            continue
        if runtime == "torch":
            ms = measure_latency(config, a, settings[runtime])[0]
        else:
            ms = measure_onnx_latency(config, a, settings[runtime], work=args.out)[0]
        doc[runtime][a.key] = ms
        _save(store, doc)
        print(f"[{i + 1}/{len(jobs)}] {runtime} ⟨{a.key}⟩ {ms:.2f} ms", flush=True)

    eager = {Arch.parse(k): v for k, v in doc["torch"].items()}
    int8 = {Arch.parse(k): v for k, v in doc["onnx-int8"].items()}
    anchors = {a: int8[a] for a in [T, *depth_anchors(archs)]}
    interpolated = interpolate_depths(archs, anchors)
    between = [a for a in archs if (a.A, a.H, a.I) in checked and a not in anchors]
    errors = [abs(interpolated[a] / int8[a] - 1) for a in between]
    lines = [f"î at batch 1 × 128 tokens, 1 thread, MiniLM `auto` space ({len(archs)} shapes); "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"CPU flags {_cpu_flags()}.", "",
             f"Teacher ⟨{T.key}⟩: {eager[T]:.2f} ms on PyTorch eager float32, {int8[T]:.2f} ms on ONNX Runtime int8.", "",
             f"Interpolation in depth (int8): {len(between)} shapes of {len(checked)} widths timed at every depth; |interpolated/measured − 1| "
             f"median {100 * statistics.median(errors):.1f}%, max {100 * max(errors):.1f}%." if errors else "No shape between anchors to check.", ""]
    summary = {"teacher": {"arch": T.key, "eager_ms": eager[T], "int8_ms": int8[T]}, "interpolation_error": {"median": statistics.median(errors) if errors else None,
               "max": max(errors) if errors else None, "shapes": len(between)}, "budgets": {}}
    params_t = count_params(config, T).total
    for x in BUDGETS:
        by_eager = {a for a in archs if eager[T] >= x * eager[a]}
        by_int8 = {a for a in archs if int8[T] >= x * interpolated[a]}
        summary["budgets"][str(x)] = {"eager": len(by_eager), "int8": len(by_int8), "both": len(by_eager & by_int8),
                                      "eager_only": sorted(a.key for a in by_eager - by_int8), "int8_only": sorted(a.key for a in by_int8 - by_eager)}
        lines += [f"At ≥ {x:g}×: {len(by_eager)} shapes by eager î, {len(by_int8)} by int8 î, {len(by_eager & by_int8)} by both.", "",
                  "| shape | params share | eager speed-up | int8 speed-up | eligible by |", "|---|---:|---:|---:|---|"]
        for a in sorted(by_eager ^ by_int8, key=lambda a: -eager[T] / eager[a])[:12]:
            share = count_params(config, a).total / params_t
            lines.append(f"| ⟨{a.key}⟩ | {100 * share:.0f}% | {eager[T] / eager[a]:.2f}× | {int8[T] / interpolated[a]:.2f}× | {'eager only' if a in by_eager else 'int8 only'} |")
        lines.append("")
    _save(args.out / "summary.json", summary)
    (args.out / "summary.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
