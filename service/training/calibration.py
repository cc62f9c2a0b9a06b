"""Calibration of a freshly trained model on its held-out rows, recorded in the manifest.

Regression: the share of targets inside the central 50/90/95 % intervals that the server returns
(`mixture_interval` of the MC passes, with the tau just fitted on those same rows). Classification:
the expected calibration error (15 bins) of the deterministic and of the MC-averaged
probabilities. Both are computed from passes the evaluation has already drawn, never from new
random draws, so a seeded training run keeps its weights and its other metrics bit for bit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from service.engines.stats import mixture_interval
from service.scoring import expected_calibration_error, interval_coverage

__all__ = ["COVERAGE_LEVELS", "classification_calibration", "regression_calibration"]

COVERAGE_LEVELS = (0.5, 0.9, 0.95)


def regression_calibration(
    targets: npt.NDArray[np.float64],
    samples: npt.NDArray[np.float64],
    tau: list[float],
    prefix: str,
) -> dict[str, float]:
    """`<prefix>_coverage_<level>` for each served interval level, pooled over outputs.

    Args:
        targets: (rows, outputs), original units.
        samples: MC pass outputs (T, rows, outputs), original units.
        tau: fitted noise precision per output.
        prefix: metric name prefix, e.g. "validation".
    """
    draws = torch.as_tensor(samples, dtype=torch.float64)
    noise_std = torch.as_tensor([1.0 / t for t in tau], dtype=torch.float64).sqrt()
    metrics = {}
    for level in COVERAGE_LEVELS:
        lower, upper = mixture_interval(draws, noise_std, level)
        coverage = interval_coverage(targets, lower.numpy(), upper.numpy())
        metrics[f"{prefix}_coverage_{round(level * 100)}"] = coverage
    return metrics


def classification_calibration(
    probabilities: npt.NDArray[np.float64],
    mc_probabilities: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    prefix: str,
) -> dict[str, float]:
    """`<prefix>_ece` (deterministic) and `<prefix>_mc_ece` (mean of the MC passes)."""
    return {
        f"{prefix}_ece": expected_calibration_error(probabilities, labels),
        f"{prefix}_mc_ece": expected_calibration_error(mc_probabilities, labels),
    }
