"""``bort predict``: batched predictions with label names from an ONNX export or a PyTorch folder."""

from bort.predict.recipe import PredictConfig, PredictRun, predict

__all__ = ["PredictConfig", "PredictRun", "predict"]
