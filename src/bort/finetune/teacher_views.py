"""The fine-tuned teacher's views of the training inputs, computed once and read back on every step.

Task distillation's representation terms read the teacher's hidden states and Q/K/V on every training batch. A run's
training inputs are fixed (its examples and the new inputs of ``--augment``), so the views of every epoch after the first
are those of the first: computing them once saves the teacher's forward on each later step (about 35% of a step of the
≥ 4× MiniLM student on CPU, more for a larger teacher, issue 39). :func:`teacher_views` keeps them unpadded, one row per
token, in memory-mapped files under ``OUT/teacher_views/`` (one per view, in the dtype the teacher's forward gives it, so
training is unchanged up to the rounding of matrix products of other shapes), keyed by the teacher, the inputs and the
views asked for, and the run removes them when it ends. Where they would pass ``--teacher-cache-gb`` the teacher runs on
every step as before.

The files are raw tensors mapped with :func:`torch.from_file` rather than safetensors: they are written row by row while
the teacher runs (a safetensors file is written whole, from memory) and are never an output of bort.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from bort.atomic import atomic_dir, recover_dir
from bort.tasks.features import Feature, collate
from bort.training.objectives import Distiller, Views

FOLDER = "teacher_views"
_INDEX = "index.json"


def _slots(views: Views) -> list[torch.Tensor]:
    """The tensors of ``views`` in a fixed order: the hidden states of the paired layers, then Q, K, V of each relation layer."""
    return [*views.hidden, *(t for layer in views.qkv or () for t in layer)]


class CachedViews:
    """The stored views of a run's training rows; :meth:`batch` pads a batch's rows to its width, as the teacher's forward would."""

    def __init__(self, folder: Path, index: dict) -> None:
        self.hidden_count, self.offsets, self.first_row = index["hidden"], index["offsets"], index["first_row"]
        tokens = self.offsets[-1]
        self.slots = [torch.from_file(str(folder / f"{i}.bin"), shared=False, size=tokens * width, dtype=getattr(torch, dtype)).view(tokens, width)
                      for i, (width, dtype) in enumerate(index["slots"])]

    def batch(self, features: torch.Tensor, width: int, device: torch.device) -> Views:
        """The views of the rows of the features at positions ``features`` (one row each, or one per choice), padded to ``width``."""
        rows = [r for i in features.tolist() for r in range(self.first_row[i], self.first_row[i + 1])]
        out = []
        for slot in self.slots:
            padded = slot.new_zeros((len(rows), width, slot.shape[1]))
            for j, r in enumerate(rows):
                padded[j, : self.offsets[r + 1] - self.offsets[r]] = slot[self.offsets[r] : self.offsets[r + 1]]
            out.append(padded.to(device, non_blocking=True))
        qkv = out[self.hidden_count:]
        return Views(out[: self.hidden_count], [tuple(qkv[i : i + 3]) for i in range(0, len(qkv), 3)] or None, None, None)


def _rows(features: Sequence[Feature]) -> tuple[list[Feature], list[int]]:
    """Each row the encoder reads (one per feature, or one per choice) as a feature of its own, and where each feature's rows start."""
    rows = [Feature(ids, types, None) for f in features for ids, types in zip(f.rows, f.type_rows)]
    first = [0]
    for f in features:
        first.append(first[-1] + len(f.rows))
    return rows, first


def teacher_views(folder: Path, key: str, distiller: Distiller, encoder: torch.nn.Module, features: Sequence[Feature], *, limit_gb: float,
                  batch_size: int, pad_id: int, token_types: bool, autocast: torch.dtype | None, device: torch.device) -> CachedViews | None:
    """The teacher ``encoder``'s views of ``features`` that ``distiller`` reads, stored under ``folder/teacher_views`` (made now
    by one pass over the rows, shortest first, or read back where ``key`` matches); None where they would pass ``limit_gb``."""
    path = Path(folder) / FOLDER
    recover_dir(path)
    index = json.loads((path / _INDEX).read_text()) if (path / _INDEX).is_file() else None
    if index is not None and index["key"] == key:
        return CachedViews(path, index)
    shutil.rmtree(path, ignore_errors=True)  # another teacher's or other inputs' views
    rows, first = _rows(features)
    offsets = [0]
    for row in rows:
        offsets.append(offsets[-1] + len(row.input_ids))

    def forward(chosen: list[int]) -> list[torch.Tensor]:
        batch = collate([rows[r] for r in chosen], pad_id)
        extra = {"token_type_ids": batch["token_type_ids"].to(device)} if token_types else {}
        with torch.inference_mode(), torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            views = distiller.teacher_views(encoder, batch["input_ids"].to(device), batch["attention_mask"].to(device), **extra)
        return [t.cpu() for t in _slots(views)]

    probe = forward([0])
    slots = [(t.shape[-1], str(t.dtype).removeprefix("torch.")) for t in probe]
    size = offsets[-1] * sum(t.shape[-1] * t.element_size() for t in probe)
    if size > limit_gb * 2**30:
        return None
    index = {"key": key, "hidden": len(distiller.pairs), "slots": slots, "offsets": offsets, "first_row": first}
    with atomic_dir(path) as tmp:
        files = [torch.from_file(str(tmp / f"{i}.bin"), shared=True, size=offsets[-1] * w, dtype=t.dtype).view(offsets[-1], w)
                 for i, (t, (w, _)) in enumerate(zip(probe, slots))]
        order = sorted(range(len(rows)), key=lambda r: len(rows[r].input_ids))  # rows of like length together: little padding
        for b in range(0, len(order), batch_size):
            chosen = order[b : b + batch_size]
            for file, views in zip(files, forward(chosen)):
                for j, r in enumerate(chosen):
                    file[offsets[r] : offsets[r + 1]] = views[j, : offsets[r + 1] - offsets[r]]
        del files  # unmapped (written through) before the folder is renamed into place
        (tmp / _INDEX).write_text(json.dumps(index))
    return CachedViews(path, index)


def remove(folder: Path) -> None:
    """Remove a finished run's stored views."""
    shutil.rmtree(Path(folder) / FOLDER, ignore_errors=True)
