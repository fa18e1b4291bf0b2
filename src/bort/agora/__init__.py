"""Agora: fine-tuning for scarce data (algorithms.md §6; ``bort finetune --agora``)."""

from bort.agora.recipe import AgoraConfig, agora
from bort.agora.thetas import load_agora_space, prune

__all__ = ["AgoraConfig", "agora", "load_agora_space", "prune"]
