"""Scores of predictions against labels, one function per metric.

A leaf: it depends on nothing else in dropserve, so that training (the validation calibration in
the manifest), `dropserve evaluate` and the UCI benchmark all score with the same code, and
neither training nor evaluation has to import the other for it.

Conventions: regression arrays are (rows,) for one output and the MC passes (T, rows), in the
target's original units; classification takes probabilities (rows, classes) and integer labels
(rows,). Scalars come back as Python floats, per-row values as float64 arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "ECE_BINS",
    "Reliability",
    "auroc",
    "brier_score",
    "central_coverage",
    "expected_calibration_error",
    "interval_coverage",
    "log_loss",
    "mixture_cdf",
    "mixture_log_likelihood",
    "pearson",
    "reliability",
    "rmse",
    "spearman",
]

Float64 = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

ECE_BINS = 15
_TINY = 1e-300  # floor under probabilities before a log, so a confident miss costs ~690 nats


def rmse(y: ArrayLike, prediction: ArrayLike) -> float:
    """Root mean squared error over every element."""
    error = np.asarray(y, dtype=np.float64) - np.asarray(prediction, dtype=np.float64)
    return math.sqrt(float(np.mean(error**2)))


def mixture_log_likelihood(y: ArrayLike, samples: ArrayLike, tau: float) -> Float64:
    """Per-row log density of y under the MC mixture (1/T) sum_t N(samples[t], 1/tau).

    logsumexp_t(-tau/2 (y - yhat_t)^2) - log T - 0.5 log(2 pi) + 0.5 log tau, the test
    log-likelihood of Gal & Ghahramani (2016); its mean over rows is the number they report.

    Args:
        y: targets, shape (rows,).
        samples: pass outputs, shape (T, rows).
        tau: observation noise precision, in 1 / (units of y)^2.
    """
    draws = np.asarray(samples, dtype=np.float64)
    scaled = -0.5 * tau * (draws - np.asarray(y, dtype=np.float64)[None, :]) ** 2
    peak = scaled.max(axis=0)
    lse = peak + np.log(np.exp(scaled - peak).sum(axis=0))
    constant = -math.log(draws.shape[0]) - 0.5 * math.log(2.0 * math.pi) + 0.5 * math.log(tau)
    result: Float64 = lse + constant
    return result


def mixture_cdf(y: ArrayLike, samples: ArrayLike, noise_std: float) -> Float64:
    """Per-row CDF of the MC mixture at y (the probability integral transform, PIT).

    A central interval of mass m covers y exactly when |PIT - 1/2| <= m/2, so one PIT per row
    gives the coverage of every interval level at once.
    """
    draws = torch.as_tensor(np.asarray(samples, dtype=np.float64))
    target = torch.as_tensor(np.asarray(y, dtype=np.float64))
    cdf = torch.special.ndtr((target[None, :] - draws) / max(noise_std, 1e-12)).mean(dim=0)
    return np.asarray(cdf.numpy(), dtype=np.float64)


def interval_coverage(y: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Fraction of targets inside their closed interval [lower, upper]."""
    target = np.asarray(y, dtype=np.float64)
    inside = (np.asarray(lower) <= target) & (target <= np.asarray(upper))
    return float(np.mean(inside))


def central_coverage(pit: ArrayLike, levels: Sequence[float]) -> Float64:
    """Coverage of the central interval of each level, from per-row PIT values."""
    distance = np.abs(np.asarray(pit, dtype=np.float64) - 0.5)
    return np.array([float(np.mean(distance <= 0.5 * level)) for level in levels])


def _checked(probabilities: ArrayLike, labels: ArrayLike) -> tuple[Float64, npt.NDArray[np.int64]]:
    probs = np.asarray(probabilities, dtype=np.float64)
    index = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or index.shape != (probs.shape[0],):
        raise ValueError(
            f"expected probabilities (rows, classes) and labels (rows,), got {probs.shape} "
            f"and {index.shape}"
        )
    return probs, index


def log_loss(probabilities: ArrayLike, labels: ArrayLike) -> float:
    """Mean negative log probability of the true class (NLL, nats)."""
    probs, index = _checked(probabilities, labels)
    picked = probs[np.arange(index.size), index]
    return float(-np.mean(np.log(np.maximum(picked, _TINY))))


def brier_score(probabilities: ArrayLike, labels: ArrayLike) -> float:
    """Mean over rows of sum_k (p_k - [k == label])^2; 0 is perfect, 2 the worst."""
    probs, index = _checked(probabilities, labels)
    onehot = np.zeros_like(probs)
    onehot[np.arange(index.size), index] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin (equal widths over [0, 1]): rows, mean confidence and accuracy.

    Empty bins have count 0 and NaN confidence and accuracy.
    """

    edges: Float64
    counts: npt.NDArray[np.int64]
    confidence: Float64
    accuracy: Float64


def reliability(probabilities: ArrayLike, labels: ArrayLike, bins: int = ECE_BINS) -> Reliability:
    """Bin rows by the top-class probability; bin b holds confidences in (b/B, (b+1)/B]."""
    probs, index = _checked(probabilities, labels)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == index).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / counts
        accuracy = np.bincount(which, weights=correct, minlength=bins) / counts
    return Reliability(np.linspace(0.0, 1.0, bins + 1), counts, mean_confidence, accuracy)


def expected_calibration_error(
    probabilities: ArrayLike, labels: ArrayLike, bins: int = ECE_BINS
) -> float:
    """sum_b (n_b / n) |accuracy_b - confidence_b| over equal-width confidence bins (Guo 2017)."""
    table = reliability(probabilities, labels, bins)
    filled = table.counts > 0
    gaps = np.abs(table.accuracy[filled] - table.confidence[filled])
    return float(np.sum(table.counts[filled] * gaps) / np.sum(table.counts))


def _ranks(values: Float64) -> Float64:
    """1-based ranks with ties given their mean rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(1, values.size + 1, dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    mean_ranks: Float64 = (sums / counts)[inverse]
    return mean_ranks


def auroc(scores: ArrayLike, positives: ArrayLike) -> float:
    """Area under the ROC curve of `scores` for detecting `positives` (ties count one half).

    The probability that a random positive scores above a random negative (Mann-Whitney U).
    NaN when every row is positive or every row is negative.
    """
    score = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positives, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = float(_ranks(score)[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def pearson(a: ArrayLike, b: ArrayLike) -> float:
    """Pearson correlation; NaN when either side is constant."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(np.sum(x**2) * np.sum(y**2)))
    return float(np.sum(x * y) / denominator) if denominator > 0.0 else math.nan


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation (Pearson of the tie-averaged ranks)."""
    return pearson(_ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64)))
