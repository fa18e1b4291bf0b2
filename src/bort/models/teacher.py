"""The teacher: the large model a student is extracted from and distilled from, as a masked-LM model.

Folders, Hub names and aliases are resolved and read by :mod:`bort.models.loading`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForMaskedLM, PreTrainedModel, PreTrainedTokenizerBase

from bort.arch import Arch
from bort.errors import BortError
from bort.models.families import config_arch
from bort.models.loading import from_folder, has_mlm_head, load_tokenizer, position_limit, read_config, resolve_model_path


@dataclass
class Teacher:
    """A loaded teacher: where it came from, its config, tokenizer and masked-LM model."""

    path: Path
    config: transformers.PretrainedConfig
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    has_mlm_head: bool

    @property
    def arch(self) -> Arch:
        return config_arch(self.config)

    @property
    def family(self) -> str:
        return self.config.model_type

    @property
    def max_seq_len(self) -> int:
        return position_limit(self.config)

    def check_seq_len(self, seq: int, option: str) -> None:
        """Refuse a sequence length the model cannot run, naming the option that set it."""
        if seq > self.max_seq_len:
            raise BortError(f"{option} {seq} is longer than the teacher's {self.max_seq_len} positions; use at most {self.max_seq_len}")


def load_teacher(name: str | Path, *, device: str | torch.device = "cpu") -> Teacher:
    """Load a teacher as a masked-LM model in inference mode.

    A checkpoint without an MLM head loads with a freshly initialised head and
    ``has_mlm_head=False``: train it with :func:`bort.teacher.prepare.prepare_teacher`.
    """
    path = resolve_model_path(name)
    config = read_config(path)
    tokenizer = load_tokenizer(path)
    head = has_mlm_head(path)
    model = from_folder(AutoModelForMaskedLM, path, new_head=True, config=config)  # a missing MLM head: has_mlm_head False
    model.to(device).eval().requires_grad_(False)
    return Teacher(path=path, config=config, tokenizer=tokenizer, model=model, has_mlm_head=head)
