"""Tasks, the building block below finetune, evaluate, predict and compress: their specs and registry (GLUE, SuperGLUE,
RACE, one's own files), the readers, features, heads, metrics, trivial baselines and scoring."""

from bort.tasks import metrics
from bort.tasks.registry import TASKS, Example, TaskSpec, get_task, read_split

__all__ = ["TASKS", "Example", "TaskSpec", "get_task", "metrics", "read_split"]
