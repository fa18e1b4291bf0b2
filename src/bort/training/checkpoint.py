"""Training checkpoints: everything needed to resume a run exactly, written atomically.

``DIR/model.safetensors`` holds the weights; ``DIR/trainer.pt`` the optimiser, scheduler, loop
state, RNG states and the recipe's own ``extra`` record (plain tensors, numbers and strings, read back
with ``weights_only=True``), ``DIR/state.json`` the loop state as text. The data position is the loop's
step: batch streams are pure functions of their seed and start.

``DIR/good/`` is the last checkpoint saved while the smoothed loss was at its lowest: after a
divergence, the state from before the loss began to rise (the latest checkpoint can already hold a
huge loss). Its files are hard links, so keeping it costs no second write; it lives inside the
checkpoint, so it is swapped in with it and goes when a finished run removes it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from bort.atomic import atomic_dir
from bort.errors import BortError, one_line, shown
from bort.training.loop import TrainState

GOOD, STATE = "good", "state.json"


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer, scheduler, state: TrainState, extra: dict | None = None) -> None:
    """Write the checkpoint into a temporary folder and swap it in: a kill never leaves half of one.

    ``extra`` is what the recipe needs besides the loop state (e.g. fine-tuning's best dev metric).
    ``good/`` becomes this checkpoint when the smoothed loss is at its lowest, else stays as it was.
    """
    folder = Path(folder)
    try:
        _save(folder, model, optimizer, scheduler, state, extra)
    except (OSError, RuntimeError, SafetensorError) as exc:  # torch's and safetensors' writers report a full disk without errno or path
        raise BortError(f"cannot write the checkpoint {shown(folder)} ({one_line(str(exc), 200)}); check the free space and "
                        "permissions there, then run the same command again to resume") from exc


def _save(folder: Path, model: torch.nn.Module, optimizer, scheduler, state: TrainState, extra: dict | None) -> None:
    with atomic_dir(folder) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        trainer = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "state": asdict(state),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "extra": extra or {},
        }
        torch.save(trainer, tmp / "trainer.pt")
        (tmp / STATE).write_text(json.dumps(asdict(state)), encoding="utf-8")
        if state.smooth is not None and state.smooth <= state.min_loss:
            _link_files(tmp, tmp / GOOD)
        elif (folder / GOOD).is_dir():
            _link_files(folder / GOOD, tmp / GOOD)


def _link_files(src: Path, dst: Path) -> None:
    """Hard-link the files of ``src`` into the new folder ``dst`` (copies where the file system has no hard links)."""
    files = [f for f in src.iterdir() if f.is_file()]
    dst.mkdir()
    for f in files:
        try:
            os.link(f, dst / f.name)
        except OSError:
            shutil.copy2(f, dst / f.name)


def good_state(folder: Path) -> TrainState | None:
    """The loop state of ``folder/good/`` (see the module's doc), or None when there is none."""
    path = Path(folder) / GOOD / STATE
    return TrainState(**json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer, scheduler) -> tuple[TrainState, dict]:
    """Restore weights, optimiser, scheduler and RNG states in place; returns the loop state and ``extra``."""
    try:
        load_model(model, str(folder / "model.safetensors"), strict=True)
        trainer = torch.load(folder / "trainer.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(trainer["optimizer"])
        scheduler.load_state_dict(trainer["scheduler"])
        torch.set_rng_state(trainer["rng"])
        if trainer["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(trainer["cuda_rng"])
        state = TrainState(**trainer["state"])
        extra = trainer.get("extra", {})
    except Exception as exc:  # whatever is damaged (a field missing or of the wrong type): one line, not the library's traceback
        raise BortError(f"cannot resume from {shown(folder)} ({type(exc).__name__}: {str(exc)[:120]}); "
                        "delete that folder to start afresh, or give a new --out") from None
    return state, extra
