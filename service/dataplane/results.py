"""What the data plane hands to protocol adapters: NumPy arrays in plain dataclasses.

The engines compute in torch (on a GPU, perhaps); the adapters only shape answers, so they get
host arrays and never see a tensor. On the CPU the conversion is a view, not a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from service.dataplane.registry import LoadedModel
from service.engines.precision import Precision
from service.engines.stats import ClassificationSummary, RegressionSummary

__all__ = [
    "ClassificationStats",
    "Prediction",
    "RegressionStats",
    "Uncertainty",
    "as_arrays",
]

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RegressionStats:
    """Per row and output, shape (rows, outputs), original units."""

    mean: Floats
    variance: Floats
    std: Floats
    epistemic_variance: Floats
    aleatoric_variance: Floats
    lower: Floats
    upper: Floats


@dataclass(frozen=True)
class ClassificationStats:
    """probabilities/variance/std shape (rows, classes); the rest shape (rows,), entropies in
    nats; `label` is the index of the most probable class."""

    probabilities: Floats
    variance: Floats
    std: Floats
    predictive_entropy: Floats
    expected_entropy: Floats
    mutual_information: Floats
    label: npt.NDArray[np.int64]


@dataclass(frozen=True)
class Prediction:
    """Deterministic output: regression values or class probabilities, shape (rows, outputs)."""

    model: LoadedModel
    values: Floats


@dataclass(frozen=True)
class Uncertainty:
    """MC-dropout summary plus the request parameters actually used (echoed to the client)."""

    model: LoadedModel
    summary: RegressionStats | ClassificationStats
    samples: int
    seed: int
    interval: float
    device: str
    precision: Precision
    draws: npt.NDArray[np.float32] | None  # (T, rows, outputs) when the client asked for them


def as_arrays(
    summary: RegressionSummary | ClassificationSummary,
) -> RegressionStats | ClassificationStats:
    """The engine's tensor summary as host arrays, field by field."""
    kind = RegressionStats if isinstance(summary, RegressionSummary) else ClassificationStats
    return kind(**{f.name: getattr(summary, f.name).cpu().numpy() for f in fields(summary)})
