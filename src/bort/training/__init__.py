"""The one training loop and the losses it is used with."""

from bort.training.loop import OptimConfig, train
from bort.training.losses import DistillLoss, soft_cross_entropy

__all__ = ["DistillLoss", "OptimConfig", "soft_cross_entropy", "train"]
