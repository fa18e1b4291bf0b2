"""Distillation pretraining of an extracted architecture (algorithms.md §4; ``bort pretrain``)."""

from bort.models.slices import init_from_teacher, teacher_weight_map
from bort.pretrain.recipe import PretrainConfig, PretrainResult, pretrain

__all__ = ["PretrainConfig", "PretrainResult", "init_from_teacher", "pretrain", "teacher_weight_map"]
