"""Engines that compute a simple closed form instead of running the network.

For tests of everything around inference (HTTP, protocols, batching, limits) without ONNX
Runtime or a forward pass, with answers a test can state exactly:

- `predict`: every output is the mean of the row's features (regression), or the softmax of
  (mean, 0, 0, ...) over the classes (classification);
- `sample`: the same value plus standard normal noise per pass, row and output, drawn from a
  generator seeded with the request's seed (regression); classification passes take the
  softmax of the noisy logits. A segment's draws depend only on its rows and seed, as with the
  real engine, so batching never changes an answer.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from service.bundle import Bundle
from service.config import Settings
from service.engines.base import DeterministicEngine, Segments, StochasticEngine
from service.engines.precision import Precision

__all__ = ["FakeDeterministicEngine", "FakeStochasticEngine", "fake_engines"]


def _logits(features: npt.NDArray[np.float64], outputs: int, classes: bool) -> torch.Tensor:
    means = torch.as_tensor(features, dtype=torch.float64).mean(dim=1, keepdim=True)
    if not classes:
        return means.expand(-1, outputs)
    return torch.nn.functional.pad(means, (0, outputs - 1))


class FakeDeterministicEngine:
    def __init__(self, bundle: Bundle) -> None:
        manifest = bundle.manifest
        self._outputs = manifest.n_outputs
        self._classes = manifest.task == "classification"
        self._loaded = False

    def load(self) -> None:
        self._loaded = True

    @property
    def ready(self) -> bool:
        return self._loaded

    def predict(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        logits = _logits(features, self._outputs, self._classes)
        values = torch.softmax(logits, dim=-1) if self._classes else logits
        return values.numpy()


class FakeStochasticEngine:
    def __init__(self, bundle: Bundle, device: torch.device) -> None:
        manifest = bundle.manifest
        self._outputs = manifest.n_outputs
        self._classes = manifest.task == "classification"
        self._device = device
        self._loaded = False

    def load(self) -> None:
        self._loaded = True

    @property
    def ready(self) -> bool:
        return self._loaded

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def largest_layer_macs(self) -> int:
        return 0

    def sample(
        self,
        features: npt.NDArray[np.float64],
        samples: int,
        seed: int,
        *,
        deadline: float | None = None,
        precision: Precision = "fp32",
    ) -> torch.Tensor:
        return self.sample_segments(features, [(features.shape[0], seed)], samples)

    def sample_segments(
        self,
        features: npt.NDArray[np.float64],
        segments: Segments,
        samples: int,
        *,
        deadline: float | None = None,
        precision: Precision = "fp32",
    ) -> torch.Tensor:
        logits = _logits(features, self._outputs, self._classes)
        parts = []
        start = 0
        for rows, seed in segments:
            generator = torch.Generator().manual_seed(seed)
            noise = torch.randn(
                (samples, rows, self._outputs), generator=generator, dtype=torch.float64
            )
            parts.append(logits[start : start + rows] + noise)
            start += rows
        draws = torch.cat(parts, dim=1)
        if self._classes:
            draws = torch.softmax(draws, dim=-1)
        return draws.float()


def fake_engines(
    bundle: Bundle, device: torch.device, settings: Settings
) -> tuple[DeterministicEngine, StochasticEngine]:
    """An `EngineFactory` of fake engines, loaded."""
    deterministic, stochastic = (
        FakeDeterministicEngine(bundle),
        FakeStochasticEngine(bundle, device),
    )
    deterministic.load()
    stochastic.load()
    return deterministic, stochastic
