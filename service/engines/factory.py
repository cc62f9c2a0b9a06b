"""The engines the server runs: ONNX Runtime for `predict`, the PyTorch MC engine for `sample`."""

from __future__ import annotations

import torch

from service.bundle import Bundle
from service.config import Settings
from service.engines.base import DeterministicEngine, StochasticEngine
from service.engines.cuda_graphs import cuda_capture
from service.engines.mc_engine import MCDropoutEngine
from service.engines.onnx_engine import OnnxEngine

__all__ = ["build_engines"]


def build_engines(
    bundle: Bundle, device: torch.device, settings: Settings
) -> tuple[DeterministicEngine, StochasticEngine]:
    """Both engines of one bundle version, loaded (an `EngineFactory`)."""
    deterministic = OnnxEngine(bundle, device, settings.onnx_threads)
    deterministic.load()
    capture = cuda_capture if device.type == "cuda" and settings.cuda_graphs else None
    mc = MCDropoutEngine(bundle, device, settings.mc_chunk_elements, graph_capture=capture)
    mc.load()
    return deterministic, mc
