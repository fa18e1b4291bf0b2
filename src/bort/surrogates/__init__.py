"""The surrogates p̂, î and ê of algorithms.md §2, each a function of ξ."""

from bort.surrogates.error import THETA_FIELDS, ErrorSettings, ErrorSurrogate
from bort.surrogates.latency import LatencySettings, flops, measure_latency
from bort.surrogates.params import ParamCount, count_params

__all__ = ["THETA_FIELDS", "ErrorSettings", "ErrorSurrogate", "LatencySettings", "ParamCount", "count_params", "flops", "measure_latency"]
