"""Regression quality of a served model: what `/predict` and `/uncertainty` answer, scored.

Deterministic predictions come from the ONNX engine, passes from the MC engine, and the intervals
from `summarise_regression`, the function that shapes the `/uncertainty` answer; so the coverage
measured here is the coverage of the served intervals, not of a re-implementation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from service.dataplane import LoadedModel
from service.engines.stats import summarise_regression
from service.evaluation.batches import row_batches
from service.scoring import (
    interval_coverage,
    mixture_cdf,
    mixture_log_likelihood,
    pearson,
    rmse,
    spearman,
)

__all__ = ["LEVELS", "RegressionRows", "regression_metrics", "score_regression"]

Float64 = npt.NDArray[np.float64]
LEVELS = (0.5, 0.9, 0.95)


@dataclass(frozen=True)
class RegressionRows:
    """Per row and output (rows, outputs), original units: everything the metrics and plots need.

    `pit` is the MC mixture's CDF at the target; `lower`/`upper` map each level of `LEVELS` to
    the served interval's bounds.
    """

    targets: Float64
    deterministic: Float64
    mean: Float64
    std: Float64
    lower: dict[float, Float64]
    upper: dict[float, Float64]
    log_likelihood: Float64
    pit: Float64


def score_regression(
    model: LoadedModel,
    features: Float64,
    targets: Float64,
    *,
    samples: int,
    seed: int,
    batch_rows: int,
    progress: bool,
) -> RegressionRows:
    """Run both engines over the rows in batches; batch i draws its passes with seed + i."""
    tau_values = model.manifest.tau or []
    tau = torch.tensor(tau_values, dtype=torch.float64)
    parts: dict[str, list[Float64]] = {}

    def keep(name: str, value: Float64) -> None:
        parts.setdefault(name, []).append(value)

    for index, rows in row_batches(len(features), batch_rows, progress=progress, label="evaluate"):
        x, y = features[rows], targets[rows]
        keep("deterministic", model.deterministic.predict(x))
        draws = model.mc.sample(x, samples, seed + index).double()
        for level in LEVELS:
            summary = summarise_regression(draws, tau, level)
            keep(f"lower{level}", summary.lower.cpu().numpy())
            keep(f"upper{level}", summary.upper.cpu().numpy())
        keep("mean", summary.mean.cpu().numpy())
        keep("std", summary.std.cpu().numpy())
        passes = draws.numpy()
        outputs = range(y.shape[1])
        keep(
            "log_likelihood",
            np.stack(
                [mixture_log_likelihood(y[:, j], passes[:, :, j], tau_values[j]) for j in outputs],
                axis=1,
            ),
        )
        keep(
            "pit",
            np.stack(
                [
                    mixture_cdf(y[:, j], passes[:, :, j], math.sqrt(1 / tau_values[j]))
                    for j in outputs
                ],
                axis=1,
            ),
        )
    joined = {name: np.concatenate(values) for name, values in parts.items()}
    return RegressionRows(
        targets=targets,
        deterministic=joined["deterministic"],
        mean=joined["mean"],
        std=joined["std"],
        lower={level: joined[f"lower{level}"] for level in LEVELS},
        upper={level: joined[f"upper{level}"] for level in LEVELS},
        log_likelihood=joined["log_likelihood"],
        pit=joined["pit"],
    )


def regression_metrics(scored: RegressionRows) -> dict[str, float]:
    """Accuracy, likelihood and calibration of the scored rows, pooled over outputs.

    `log_likelihood` is the mean MC mixture log-likelihood per row and output (nats) with the
    bundle's tau; `std_error_*` correlate the predicted std with |target - MC mean|.
    """
    error = np.abs(scored.targets - scored.mean)
    metrics = {
        "rmse": rmse(scored.targets, scored.deterministic),
        "mc_rmse": rmse(scored.targets, scored.mean),
        "log_likelihood": float(np.mean(scored.log_likelihood)),
    }
    for level in LEVELS:
        lower, upper = scored.lower[level], scored.upper[level]
        name = round(level * 100)
        metrics[f"coverage_{name}"] = interval_coverage(scored.targets, lower, upper)
        metrics[f"width_{name}"] = float(np.mean(upper - lower))
    metrics["std_error_pearson"] = pearson(scored.std.ravel(), error.ravel())
    metrics["std_error_spearman"] = spearman(scored.std.ravel(), error.ravel())
    return metrics
