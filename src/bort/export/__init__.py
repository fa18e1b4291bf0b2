"""Fast CPU inference: ONNX export (fp32, int8), one predictor interface over PyTorch and ONNX Runtime, and the benchmark."""

from bort.export.onnx import ExportConfig, export_onnx
from bort.export.runtime import Predictor, load_predictor

__all__ = ["ExportConfig", "Predictor", "export_onnx", "load_predictor"]
