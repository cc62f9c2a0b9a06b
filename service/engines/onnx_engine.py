"""Deterministic inference: the exported ONNX graph (test-time scaling folded in) on ORT."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch

from service.bundle import Bundle
from service.device import onnx_providers

__all__ = ["OnnxEngine"]


class OnnxEngine:
    """Runs `model.onnx` of a bundle; outputs regression values or class probabilities."""

    def __init__(self, bundle: Bundle, device: torch.device, threads: int = 0) -> None:
        self._bundle = bundle
        self._device = device
        self._threads = threads
        self._session: ort.InferenceSession | None = None

    def load(self) -> None:
        options = ort.SessionOptions()
        if self._threads:
            options.intra_op_num_threads = self._threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            self._bundle.onnx_bytes, options, providers=onnx_providers(self._device)
        )

    @property
    def ready(self) -> bool:
        return self._session is not None

    @property
    def providers(self) -> list[str]:
        return [] if self._session is None else list(self._session.get_providers())

    def predict(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Raw features (rows, features) -> values or class probabilities (rows, outputs)."""
        if self._session is None:
            raise RuntimeError("OnnxEngine.predict called before load()")
        onnx_info = self._bundle.manifest.onnx
        # Values past the float32 range become inf here; the data plane refuses the non-finite
        # output that follows, so the overflow is expected and not worth a warning.
        with np.errstate(over="ignore"):
            inputs = np.ascontiguousarray(features, dtype=np.float32)
        (out,) = self._session.run([onnx_info.output_names[-1]], {onnx_info.input_name: inputs})
        return np.asarray(out, dtype=np.float64)
