"""p̂(ξ): the exact parameter count of the student encoder, from the architecture alone."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PretrainedConfig

from bort.arch import Arch
from bort.models.families import family


@dataclass(frozen=True)
class ParamCount:
    """``total``: embeddings + encoder layers; ``effective``: without the embeddings."""

    total: int
    effective: int


def count_params(config: PretrainedConfig, arch: Arch) -> ParamCount:
    """Trainable parameters of the family's base model (no pooler, no MLM head) at shape ξ.

    It equals ``sum(p.numel() for p in AutoModel.from_config(cfg, <no pooler>).parameters())`` in every family
    (tests check this over many ξ). The MLM head is left out (its decoder is tied to the word
    embeddings, which are counted once, here). The attention head count A changes only MPNet's (its relative bias).
    """
    H, I = arch.H, arch.I  # noqa: E741
    embeddings = family(config).embedding_params(config, arch)
    attention = 4 * (H * H + H) + 2 * H  # Q, K, V, output projection; LayerNorm
    feed_forward = (H * I + I) + (I * H + H) + 2 * H  # up, down; LayerNorm
    effective = arch.D * (attention + feed_forward)
    return ParamCount(total=embeddings + effective, effective=effective)
