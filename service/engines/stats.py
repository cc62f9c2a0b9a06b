"""Summaries of Monte-Carlo dropout samples: predictive moments, intervals, entropies.

Regression (Gal & Ghahramani 2016, eq. 8): the predictive distribution is the mixture of the T
pass outputs, each with Gaussian observation noise of precision tau. Its variance is the sample
variance of the passes (epistemic) plus 1/tau (aleatoric); its central interval is taken from the
mixture's own quantiles rather than a Gaussian approximation.

Classification: mean softmax probabilities, their spread, the predictive entropy H[E p] and the
mutual information H[E p] - E H[p] (BALD) that isolates the model's own uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "ClassificationSummary",
    "RegressionSummary",
    "mixture_interval",
    "summarise_classification",
    "summarise_regression",
]

_BISECTION_STEPS = 48


@dataclass(frozen=True)
class RegressionSummary:
    """Per row and output, shape (rows, outputs), original units."""

    mean: torch.Tensor
    variance: torch.Tensor
    std: torch.Tensor
    epistemic_variance: torch.Tensor
    aleatoric_variance: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor


@dataclass(frozen=True)
class ClassificationSummary:
    """probabilities/variance/std shape (rows, classes); the rest shape (rows,)."""

    probabilities: torch.Tensor
    variance: torch.Tensor
    std: torch.Tensor
    predictive_entropy: torch.Tensor
    expected_entropy: torch.Tensor
    mutual_information: torch.Tensor
    label: torch.Tensor


def mixture_interval(
    samples: torch.Tensor, noise_std: torch.Tensor, level: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Central `level` interval of the mixture (1/T) sum_t N(samples[t], noise_std^2).

    Solved per row and output by bisection on the mixture CDF, which is monotone.

    Args:
        samples: pass outputs, shape (T, rows, outputs).
        noise_std: observation noise std per output, shape (outputs,).
        level: interval mass in (0, 1).
    """
    scale = noise_std.clamp_min(1e-12)
    spread = 10.0 * scale
    lo_all = samples.amin(dim=0) - spread
    hi_all = samples.amax(dim=0) + spread

    def quantile(q: float) -> torch.Tensor:
        lo, hi = lo_all.clone(), hi_all.clone()
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            cdf = torch.special.ndtr((mid - samples) / scale).mean(dim=0)
            below = cdf < q
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    tail = 0.5 * (1.0 - level)
    return quantile(tail), quantile(1.0 - tail)


def summarise_regression(
    samples: torch.Tensor, tau: torch.Tensor, level: float
) -> RegressionSummary:
    """Summarise regression passes.

    Args:
        samples: pass outputs in original units, shape (T, rows, outputs).
        tau: observation noise precision per output, shape (outputs,).
        level: central interval mass, e.g. 0.95.
    """
    samples = samples.double()
    tau = tau.double().to(samples.device)
    mean = samples.mean(dim=0)
    epistemic = samples.var(dim=0, correction=0)
    aleatoric = (1.0 / tau).expand_as(mean)
    variance = epistemic + aleatoric
    lower, upper = mixture_interval(samples, torch.sqrt(1.0 / tau), level)
    return RegressionSummary(
        mean=mean,
        variance=variance,
        std=variance.sqrt(),
        epistemic_variance=epistemic,
        aleatoric_variance=aleatoric,
        lower=lower,
        upper=upper,
    )


def _entropy(probabilities: torch.Tensor) -> torch.Tensor:
    entropy: torch.Tensor = -torch.special.xlogy(probabilities, probabilities).sum(dim=-1)
    return entropy


def summarise_classification(probabilities: torch.Tensor) -> ClassificationSummary:
    """Summarise per-pass softmax probabilities of shape (T, rows, classes); entropies in nats."""
    probabilities = probabilities.double()
    mean = probabilities.mean(dim=0)
    variance = probabilities.var(dim=0, correction=0)
    predictive = _entropy(mean)
    expected = _entropy(probabilities).mean(dim=0)
    # H[E p] >= E H[p] by concavity; clamp the float round-off that can make it -1e-17.
    mutual = (predictive - expected).clamp_min(0.0)
    return ClassificationSummary(
        probabilities=mean,
        variance=variance,
        std=variance.sqrt(),
        predictive_entropy=predictive,
        expected_entropy=expected,
        mutual_information=mutual,
        label=mean.argmax(dim=-1),
    )
