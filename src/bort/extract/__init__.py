"""Extraction: the FPTAS over the space, its resumable store, the training backends, and the ``bort extract`` recipe."""

from bort.extract.backends import BackendConfig
from bort.extract.fptas import Candidate, SearchResult, fptas, size_speed_factor, w_coefficient
from bort.extract.recipe import ExtractConfig, extract
from bort.extract.store import RunStore

__all__ = ["BackendConfig", "Candidate", "ExtractConfig", "RunStore", "SearchResult", "extract", "fptas", "size_speed_factor", "w_coefficient"]
