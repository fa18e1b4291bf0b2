"""Benchmark of the scale-out backends (issue 7): candidate throughput and scheduling overhead.

    python benchmarks/cluster_bench.py [--candidates 16] [--steps 10] [--rounds 3] [--out benchmarks/out/cluster]

On one machine, the same N small single-threaded candidate trainings (minilm-l6 with a quickly
trained MLM head, the built-in corpus, sequences of 64) run on four backends, side by side in one
process: in-process (``--workers 1``), 1 and 2 local worker processes, and Ray tasks on a local
cluster of 2 CPUs capped at 1 and at 2 in flight. Each backend is started and warmed up first (its workers
hold the prepared surrogate), then the rounds interleave the backends in a rotating order, so
that load from other jobs on a shared machine falls on all of them alike.

Per backend and round: throughput (candidates per second of wall time), the overhead per
candidate, the worker-slot time not spent training, (wall × slots − Σ training seconds) / N, and
the CPU share of a training (its CPU time over its wall time: below 100% when other jobs on the
machine take the cores). The
summary gives medians over the rounds and ratios to in-process; start-up times are reported apart.
Every backend must return the same ê for every candidate (checked). Before and after, a control
measures the machine's CPU headroom: the CPU time 2 busy processes get over what 1 gets (2.0× on
an idle 2-core machine); the 2-worker ratio can be no better.

Writes OUT/cluster_bench.json and OUT/cluster_bench.md (the table pasted into docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from bort.arch import Arch
from bort.data.corpus import load_corpus
from bort.extract.backends import BackendConfig, LocalPool, open_backend
from bort.models.teacher import load_teacher
from bort.surrogates.error import ErrorSettings, ErrorSurrogate
from bort.teacher.prepare import HeadConfig, ensure_mlm_head
from bort.training.hparams import Theta

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"D": (1, 2), "A": (2, 4), "H": (64, 128), "I": (128, 256)}  # 16 small shapes


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def build_surrogate(out: Path, steps: int, seq_len: int) -> ErrorSurrogate:
    teacher = load_teacher("minilm-l6")
    corpus = load_corpus("builtin", teacher.tokenizer, seq_len=seq_len)
    teacher = ensure_mlm_head(teacher, corpus, out / "teacher_mlm", HeadConfig(steps=20))
    settings = ErrorSettings(steps=steps, thetas=(Theta(batch_size=8),), eval_sequences=16)
    return ErrorSurrogate(teacher, corpus, settings)


def _spin(seconds: float, queue) -> None:
    start, cpu = time.time(), time.process_time()
    while time.time() - start < seconds:
        pass
    queue.put(time.process_time() - cpu)


def cpu_headroom(seconds: float = 5.0) -> float:
    """CPU time that 2 busy processes get, over what 1 gets, in the same seconds: 2.0 on an idle 2-core machine.

    The control for the 2-worker ratio: on a shared machine it says how much parallelism there was to have.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    got = []
    for n in (1, 2):
        queue = ctx.Queue()
        procs = [ctx.Process(target=_spin, args=(seconds, queue)) for _ in range(n)]
        for proc in procs:
            proc.start()
        got.append(sum(queue.get() for _ in procs))
        for proc in procs:
            proc.join()
    return got[1] / got[0]


def timed_map(backend, jobs) -> tuple[float, list]:
    start = time.perf_counter()
    trials = list(backend.map(jobs))
    return time.perf_counter() - start, trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "cluster")
    ap.add_argument("--candidates", type=int, default=16, help="trainings per round and backend (the 16 shapes, cycled)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    surrogate = build_surrogate(args.out, args.steps, args.seq_len).prepare()
    archs = [Arch(*v) for v in itertools.product(*SPACE.values())]
    theta = surrogate.settings.thetas[0]
    jobs = [(archs[i % len(archs)], theta) for i in range(args.candidates)]

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    configs = {  # name → (backend factory, worker slots)
        "in-process (1)": (lambda: open_backend(BackendConfig(workers=1), surrogate, "cpu"), 1),
        # One worker process, which `bort extract --workers 1` never uses: the local counterpart of one Ray task in flight.
        "local, 1 worker process": (lambda: LocalPool(surrogate, ["cpu"], BackendConfig()), 1),
        "local, 2 workers": (lambda: open_backend(BackendConfig(workers=2), surrogate, "cpu"), 2),
        "ray, 1 in flight": (lambda: open_backend(BackendConfig(kind="ray", workers=1), surrogate, "cpu"), 1),
        "ray, 2 in flight": (lambda: open_backend(BackendConfig(kind="ray", workers=2), surrogate, "cpu"), 2),
    }
    backends, startup = {}, {}
    for name, (factory, _) in configs.items():
        start = time.perf_counter()
        backends[name] = factory()
        timed_map(backends[name], jobs[:2])  # warm-up: workers started, surrogate fetched
        startup[name] = time.perf_counter() - start

    load_before, headroom_before = os.getloadavg(), cpu_headroom()
    rows: dict[str, list[dict]] = {name: [] for name in configs}
    errors: dict[str, dict[str, float]] = {}
    names = list(configs)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order each round
            wall, trials = timed_map(backends[name], jobs)
            slots = configs[name][1]
            busy = sum(t.seconds for t in trials)
            cpu = sum(t.cpu_seconds for t in trials)
            rows[name].append({"wall_s": wall, "throughput": len(jobs) / wall, "overhead_ms": 1000 * (wall * slots - busy) / len(jobs),
                               "train_s_mean": busy / len(jobs), "cpu_s_mean": cpu / len(jobs), "cpu_share": cpu / busy,
                               "loadavg_1min": os.getloadavg()[0]})
            errors[name] = {t.arch.key: t.error for t in trials}
            print(f"round {r + 1} {name}: {wall:.2f} s, {len(jobs) / wall:.2f} candidates/s", flush=True)
    load_after, headroom_after = os.getloadavg(), cpu_headroom()
    for backend in backends.values():
        backend.close()
    ray.shutdown()

    reference = errors["in-process (1)"]
    max_diff = max(abs(e[k] - reference[k]) for e in errors.values() for k in reference)
    base = statistics.median(r["throughput"] for r in rows["in-process (1)"])
    summary = {}
    for name in configs:
        tp = statistics.median(r["throughput"] for r in rows[name])
        summary[name] = {"throughput": tp, "speedup": tp / base, "overhead_ms": statistics.median(r["overhead_ms"] for r in rows[name]),
                         "train_s_mean": statistics.median(r["train_s_mean"] for r in rows[name]), "startup_s": startup[name],
                         "cpu_share": statistics.median(r["cpu_share"] for r in rows[name]),
                         "cpu_s_mean": statistics.median(r["cpu_s_mean"] for r in rows[name]),
                         "rounds": rows[name]}
    doc = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(),
        "cores": os.cpu_count(), "torch": torch.__version__, "ray": ray.__version__, "candidates": len(jobs), "steps": args.steps,
        "seq_len": args.seq_len, "rounds": args.rounds, "loadavg_before": load_before, "loadavg_after": load_after,
        "max_error_diff": max_diff, "cpu_headroom_before": headroom_before, "cpu_headroom_after": headroom_after, "backends": summary,
    }
    (args.out / "cluster_bench.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    lines = [
        "| backend | candidates/s | × in-process | overhead per candidate (ms) | training per candidate (s) | its CPU time (s) | CPU share | start-up (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['throughput']:.2f} | {s['speedup']:.2f} | {s['overhead_ms']:.0f} | {s['train_s_mean']:.2f} | "
                     f"{s['cpu_s_mean']:.2f} | {100 * s['cpu_share']:.0f}% | {s['startup_s']:.1f} |")
    lines.append("")
    lines.append(f"max |ê difference| between backends: {max_diff:.1e}; load average before/after: "
                 f"{load_before[0]:.1f} / {load_after[0]:.1f} on {os.cpu_count()} cores; CPU headroom (2 busy processes "
                 f"against 1) before/after: {headroom_before:.2f}× / {headroom_after:.2f}×")
    (args.out / "cluster_bench.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
