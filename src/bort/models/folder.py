"""Writing a Hugging Face model folder in place, beside a run's own files (checkpoints, logs)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from transformers import AutoConfig, PreTrainedModel

from bort.utils import atomic_write_text


def save_model_folder(out: Path, model: PreTrainedModel, tokenizer, files: dict[str, str] | None = None) -> None:
    """Write the model's and tokenizer's files, and ``files`` (name → text), into the folder ``out``.

    They are written in a temporary folder first and each renamed into place, so no file is ever
    half-written; the folder's other files (checkpoint/, logs) are left alone.
    """
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".final."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, text in (files or {}).items():
            atomic_write_text(tmp / name, text)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    AutoConfig.from_pretrained(out)  # the folder must load
