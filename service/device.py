"""The one place that decides where inference runs, for torch and ONNX Runtime alike."""

from __future__ import annotations

import logging
from typing import Literal

import torch

__all__ = ["DeviceSetting", "onnx_providers", "resolve_torch_device"]

logger = logging.getLogger(__name__)

DeviceSetting = Literal["auto", "cpu", "cuda"]


def resolve_torch_device(setting: str) -> torch.device:
    """Map a device setting (`auto`, `cpu`, `cuda`, `cuda:N`) to a torch device.

    `auto` picks CUDA when available. An explicit CUDA request on a machine without CUDA falls back
    to CPU with a warning, so one configuration runs everywhere (Ray's fake GPUs, laptops).
    """
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            logger.warning("device %r requested but CUDA is not available; using cpu", setting)
            return torch.device("cpu")
        return torch.device(setting)
    if setting == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {setting!r}; use auto, cpu, cuda or cuda:N")


def onnx_providers(device: torch.device) -> list[str]:
    """ONNX Runtime providers for a device: CUDA first when it is both wanted and built."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    if device.type == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
