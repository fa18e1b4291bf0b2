"""The one training loop and the losses it is used with."""

from bort.training.loop import OptimConfig, TrainState, build_optimizer, train
from bort.training.losses import LogitLoss, soft_cross_entropy

__all__ = ["LogitLoss", "OptimConfig", "TrainState", "build_optimizer", "soft_cross_entropy", "train"]
