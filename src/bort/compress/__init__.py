"""``bort compress``: one command from a teacher (and tasks) to a fast student, with a report of the quality kept and the speed gained."""

from bort.compress.config import CompressConfig
from bort.compress.recipe import compress
from bort.compress.report import CompressResult

__all__ = ["CompressConfig", "CompressResult", "compress"]
