"""``bort finetune``: one task, a fresh head, the epoch chosen on a held-out slice of the training set (algorithms.md §5),
with optional distillation from a fine-tuned task teacher and new inputs it labels."""

from bort.finetune.augment import Augment
from bort.finetune.recipe import FinetuneConfig, FinetuneResult, dev_metrics, finetune, subset, write_eval
from bort.finetune.task_distill import TaskDistill

__all__ = ["Augment", "FinetuneConfig", "FinetuneResult", "TaskDistill", "dev_metrics", "finetune", "subset", "write_eval"]
