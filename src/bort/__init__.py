"""bort: extract, pretrain and ship small BERT/RoBERTa models (the Bort method, for any teacher).

The pipeline stages, each with one public entry:

- :mod:`bort.space` — the architecture space Ξ (:func:`bort.space.load_space`);
- :mod:`bort.surrogates` — p̂, î and ê (:func:`count_params`, :func:`measure_latency`, :class:`ErrorSurrogate`);
- :mod:`bort.search` — the FPTAS and the ``bort extract`` recipe (:func:`bort.search.extract`);
- :mod:`bort.models` — teachers and students (:func:`load_teacher`, :func:`build_student`).
"""

__version__ = "0.1.0"

from bort.arch import Arch  # noqa: E402
from bort.errors import BortError  # noqa: E402

__all__ = ["Arch", "BortError", "__version__"]
