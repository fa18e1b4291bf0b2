"""``bort bench``: CPU latency and throughput of models side by side on every runtime that applies, and the timing
helpers compress uses to check a student's speed-up."""

from bort.bench.recipe import BenchConfig, bench

__all__ = ["BenchConfig", "bench"]
