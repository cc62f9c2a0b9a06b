"""Fit the observation noise precision tau by maximising the MC predictive log-likelihood.

For one output, with y_i the held-out targets and yhat_it the outputs of T stochastic passes (both
in original units),

    ll(tau) = mean_i [logsumexp_t(-tau/2 (y_i - yhat_it)^2) - log T - 0.5 log(2 pi) + 0.5 log tau].

With s = log tau, ll'(s) = 0.5 (1 - tau * mean_i sum_t w_it r_it^2), where w_it are the softmax
weights of the passes and r_it the residuals. The weighted mean of r_it^2 lies between min_t r_it^2
and the plain mean over t, so every stationary point lies in

    1 / mean_it r_it^2  <=  tau  <=  1 / mean_i min_t r_it^2,

and that bracket is searched: a coarse grid in log tau, then golden-section refinement around the
best grid point (the function is smooth but not guaranteed unimodal, so the grid comes first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["TauFit", "fit_tau", "mc_log_likelihood"]

Float64 = npt.NDArray[np.float64]

_GRID_POINTS = 64
_TOLERANCE = 1e-9  # in log tau
_MAX_SPAN = 40.0  # widest bracket in log tau (e^40 ~ 2e17), for a model that hits y exactly
_FLOOR = 1e-300
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class TauFit:
    """The fitted precision and the MC predictive log-likelihood it reaches (per row, nats)."""

    tau: float
    log_likelihood: float


def _log_likelihood(squared: Float64, log_tau: float) -> float:
    """ll at tau = exp(log_tau) for squared residuals of shape (T, rows)."""
    scaled = -0.5 * math.exp(log_tau) * squared
    peak = scaled.max(axis=0)
    lse = peak + np.log(np.exp(scaled - peak).sum(axis=0))
    passes = squared.shape[0]
    return float(lse.mean()) - math.log(passes) - 0.5 * math.log(2.0 * math.pi) + 0.5 * log_tau


def mc_log_likelihood(y: Float64, samples: Float64, tau: float) -> float:
    """Mean MC predictive log-likelihood of one output.

    Args:
        y: targets, shape (rows,).
        samples: pass outputs, shape (T, rows), same units as y.
        tau: observation noise precision in those units.
    """
    return _log_likelihood((samples - y[None, :]) ** 2, math.log(tau))


def _golden_max(squared: Float64, low: float, high: float) -> tuple[float, float]:
    """(argmax, max) of ll over [low, high] in log tau by golden-section search."""
    inner_low = high - _INV_PHI * (high - low)
    inner_high = low + _INV_PHI * (high - low)
    f_low = _log_likelihood(squared, inner_low)
    f_high = _log_likelihood(squared, inner_high)
    while high - low > _TOLERANCE:
        if f_low >= f_high:
            high, inner_high, f_high = inner_high, inner_low, f_low
            inner_low = high - _INV_PHI * (high - low)
            f_low = _log_likelihood(squared, inner_low)
        else:
            low, inner_low, f_low = inner_low, inner_high, f_high
            inner_high = low + _INV_PHI * (high - low)
            f_high = _log_likelihood(squared, inner_high)
    return (inner_low, f_low) if f_low >= f_high else (inner_high, f_high)


def fit_tau(y: Float64, samples: Float64) -> TauFit:
    """Maximise the MC predictive log-likelihood of one output over tau.

    Args:
        y: targets, shape (rows,).
        samples: pass outputs, shape (T, rows), same units as y.

    Returns:
        The maximising tau (in 1 / units of y squared) and the log-likelihood there.
    """
    squared = (samples - y[None, :]) ** 2
    low = -math.log(max(float(squared.mean()), _FLOOR))
    high = -math.log(max(float(squared.min(axis=0).mean()), _FLOOR))
    high = min(max(high, low + 1e-6), low + _MAX_SPAN)
    grid = np.linspace(low, high, _GRID_POINTS)
    values = [_log_likelihood(squared, float(point)) for point in grid]
    best = int(np.argmax(values))
    bracket = (float(grid[max(best - 1, 0)]), float(grid[min(best + 1, _GRID_POINTS - 1)]))
    log_tau, value = _golden_max(squared, *bracket)
    if values[best] > value:  # the bracket's interior lost to its own grid point
        log_tau, value = float(grid[best]), values[best]
    return TauFit(tau=math.exp(log_tau), log_likelihood=value)
