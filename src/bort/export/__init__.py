"""``bort export``: ONNX export (fp32, int8) for fast CPU inference, checked against PyTorch."""

from bort.export.onnx import ExportConfig, export_onnx

__all__ = ["ExportConfig", "export_onnx"]
