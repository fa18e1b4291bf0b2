"""``bort evaluate``: a fine-tuned model's official metrics on a split, and the leaderboards' submission files."""

from bort.evaluate.recipe import EvaluateConfig, evaluate

__all__ = ["EvaluateConfig", "evaluate"]
