"""Fine-tuning and evaluation on GLUE, SuperGLUE and RACE (algorithms.md §5; ``bort finetune``, ``bort evaluate``)."""

from bort.finetune import metrics
from bort.finetune.augment import Augment
from bort.finetune.distill import TaskDistill
from bort.finetune.evaluate import EvaluateConfig, evaluate
from bort.finetune.recipe import FinetuneConfig, FinetuneResult, dev_metrics, finetune, subset, write_eval
from bort.finetune.tasks import TASKS, Example, TaskSpec, get_task, read_split

__all__ = ["TASKS", "Augment", "EvaluateConfig", "Example", "FinetuneConfig", "FinetuneResult", "TaskDistill", "TaskSpec", "dev_metrics",
           "evaluate", "finetune", "get_task", "metrics", "read_split", "subset", "write_eval"]
