"""Drawing bort's figures (``bench.png``, ``report.png``, ``pareto.png``): one way to save them, written atomically.

Labels hold names the user chose (model folders, ``--out``), in any script; the default font lacks
most of them, and matplotlib would warn once per missing glyph on stderr, where only bort's own
lines belong. The glyph is drawn as a box instead, silently.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display: before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

from bort.atomic import atomic_file  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(fig, path: Path) -> None:
    """Lay out ``fig``, write it to ``path`` as a PNG (atomically) and close it, without glyph warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        fig.tight_layout()
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
