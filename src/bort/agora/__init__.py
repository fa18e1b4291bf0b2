"""Agora: fine-tuning for scarce data (algorithms.md §6; ``bort finetune --agora``)."""

from bort.agora.recipe import AgoraConfig, agora
from bort.agora.space import AgoraTheta, load_space, prune

__all__ = ["AgoraConfig", "AgoraTheta", "agora", "load_space", "prune"]
