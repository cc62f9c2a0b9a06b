"""Deterministic export: fold test-time scaling into the weights, write ONNX, prove parity."""

from service.export.fold import AffineLayer, fold_network
from service.export.onnx_export import (
    INPUT_NAME,
    OPSET,
    PARITY_TOLERANCE,
    ExportResult,
    export_onnx,
    output_names,
    torch_eval,
)

__all__ = [
    "INPUT_NAME",
    "OPSET",
    "PARITY_TOLERANCE",
    "AffineLayer",
    "ExportResult",
    "export_onnx",
    "fold_network",
    "output_names",
    "torch_eval",
]
