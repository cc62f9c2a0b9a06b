"""What a manifest records about how its files were made: library versions, ONNX export facts."""

from __future__ import annotations

import platform
from typing import Any

import numpy as np
import onnx
import torch

import service
from service.export import ExportResult

__all__ = ["library_versions", "onnx_fields"]


def library_versions() -> dict[str, str]:
    """Versions of everything that shapes a bundle's bytes."""
    import onnxruntime

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "dropserve": service.__version__,
        "python": platform.python_version(),
    }


def onnx_fields(exported: ExportResult) -> dict[str, Any]:
    """The manifest's `onnx` section for an export."""
    return {
        "opset": exported.opset,
        "input_name": exported.input_name,
        "output_names": exported.output_names,
        "parity_max_error": exported.parity_max_error,
        "parity_tolerance": exported.parity_tolerance,
    }
