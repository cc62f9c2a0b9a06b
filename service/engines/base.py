"""The engine contract: what the data plane needs from an inference backend.

A model version is served by two engines: a deterministic one (`predict`, the weight-scaling
rule, e.g. ONNX Runtime) and a stochastic one (`sample`, Monte-Carlo dropout, e.g. PyTorch).
Each backend implements the protocol it serves; `EngineFactory` builds both for a bundle, so the
registry never names a backend (service.engines.fake is the one the HTTP tests use).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch

from service.bundle import Bundle
from service.config import Settings
from service.engines.precision import Precision

__all__ = [
    "DeterministicEngine",
    "Engine",
    "EngineFactory",
    "Segments",
    "StochasticEngine",
]

# Rows stacked from several requests: (row count, seed) per request, in stacking order.
Segments = list[tuple[int, int]]


class Engine(Protocol):
    """Loads once, then answers from memory."""

    def load(self) -> None:
        """Build the runtime state (sessions, device tensors); called once before serving."""

    @property
    def ready(self) -> bool:
        """Whether `load` has run."""


class DeterministicEngine(Engine, Protocol):
    def predict(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Raw features (rows, features) -> values or class probabilities (rows, outputs)."""


class StochasticEngine(Engine, Protocol):
    @property
    def device(self) -> torch.device:
        """Where the passes run."""

    @property
    def largest_layer_macs(self) -> int:
        """Multiply-adds of the network's largest layer per row (what precision=auto weighs)."""

    def sample(
        self,
        features: npt.NDArray[np.float64],
        samples: int,
        seed: int,
        *,
        deadline: float | None = None,
        precision: Precision = "fp32",
    ) -> torch.Tensor:
        """`samples` stochastic passes over raw features: a CPU tensor (samples, rows,
        outputs) of original-unit values or class probabilities."""

    def sample_segments(
        self,
        features: npt.NDArray[np.float64],
        segments: Segments,
        samples: int,
        *,
        deadline: float | None = None,
        precision: Precision = "fp32",
    ) -> torch.Tensor:
        """As `sample`, over rows stacked from several requests: each segment's draws are the
        ones it would get alone with its own seed. Past the monotonic `deadline` it raises
        RequestTimeoutError."""


# (bundle, device, settings) -> the loaded deterministic and stochastic engines of one version.
EngineFactory = Callable[
    [Bundle, torch.device, Settings], tuple[DeterministicEngine, StochasticEngine]
]
