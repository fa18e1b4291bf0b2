"""Writing a Hugging Face model folder in place, beside a run's own files (checkpoints, logs)."""

from __future__ import annotations

import shutil
from pathlib import Path

from transformers import AutoConfig, PreTrainedModel

from bort.atomic import atomic_write_text, staged_files
from bort.models.card import Card
from bort.models.loading import model_files, strip_remote_code


def save_model_folder(out: Path, model: PreTrainedModel, tokenizer, files: dict[str, str] | None = None, card: Card | None = None) -> None:
    """Write the model's and tokenizer's files, and ``files`` (name → text), into the folder ``out``; then its
    model card (``README.md``, :class:`~bort.models.card.Card`), which reads the folder as it now is.

    Each is renamed into place (:func:`~bort.atomic.staged_files`), so no file is ever half-written;
    the folder's other files (checkpoint/, logs) are left alone. The config is written without its
    remote-code fields (:func:`~bort.models.loading.strip_remote_code`).
    """
    strip_remote_code(model.config)
    Path(out).mkdir(exist_ok=True)  # a run's model/ folder, made at its first save
    with staged_files(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, text in (files or {}).items():
            atomic_write_text(tmp / name, text)
    AutoConfig.from_pretrained(out)  # the folder must load
    if card is not None:
        card.write(out)


def copy_model_files(src: Path, dst: Path) -> None:
    """Copy the Hugging Face files of the folder ``src`` (:func:`~bort.models.loading.model_files`) into ``dst``,
    each renamed into place; ``dst``'s other files stay."""
    Path(dst).mkdir(exist_ok=True)
    with staged_files(dst) as tmp:
        for f in model_files(src):
            shutil.copy2(f, tmp / f.name)
