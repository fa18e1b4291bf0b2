"""Extraction: the FPTAS over the space, its resumable store, and the ``bort extract`` recipe."""

from bort.search.recipe import ExtractConfig, extract
from bort.search.fptas import Candidate, SearchResult, fptas, size_speed_factor, w_coefficient
from bort.search.store import RunStore

__all__ = ["Candidate", "ExtractConfig", "RunStore", "SearchResult", "extract", "fptas", "size_speed_factor", "w_coefficient"]
