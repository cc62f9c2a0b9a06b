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
`fit_tau_stacked` runs the same search for M models at once in torch (the stacked trainer's
grid), every step a tensor operation over the models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "TauFit",
    "fit_tau",
    "fit_tau_stacked",
    "mc_log_likelihood",
    "mc_log_likelihood_stacked",
]

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


def _log_likelihood_stacked(squared: torch.Tensor, log_tau: torch.Tensor) -> torch.Tensor:
    """ll per model for squared residuals (M, T, rows) at log tau (M,): (M,)."""
    scaled = -0.5 * log_tau.exp()[:, None, None] * squared
    lse = torch.logsumexp(scaled, dim=1).mean(dim=1)
    return lse - math.log(squared.shape[1]) - 0.5 * math.log(2.0 * math.pi) + 0.5 * log_tau


def mc_log_likelihood_stacked(
    y: torch.Tensor, samples: torch.Tensor, tau: torch.Tensor
) -> torch.Tensor:
    """`mc_log_likelihood` of M models at once: y (M, rows), samples (M, T, rows), tau (M,)."""
    squared = (samples.double() - y.double()[:, None, :]) ** 2
    return _log_likelihood_stacked(squared, tau.double().log())


def fit_tau_stacked(y: torch.Tensor, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`fit_tau` for M models at once (same bracket, grid and golden section).

    Args:
        y: targets (M, rows); samples: pass outputs (M, T, rows), same units.

    Returns:
        The maximising tau (M,) and the mean log-likelihood there (M,), float64.
    """
    squared = (samples.double() - y.double()[:, None, :]) ** 2
    low = -squared.mean(dim=(1, 2)).clamp_min(_FLOOR).log()
    high = -squared.amin(dim=1).mean(dim=1).clamp_min(_FLOOR).log()
    high = torch.minimum(torch.maximum(high, low + 1e-6), low + _MAX_SPAN)
    fractions = torch.linspace(0.0, 1.0, _GRID_POINTS, dtype=torch.float64, device=y.device)
    grid = low[:, None] + (high - low)[:, None] * fractions[None, :]
    values = torch.stack(
        [_log_likelihood_stacked(squared, grid[:, i]) for i in range(_GRID_POINTS)], 1
    )
    best = values.argmax(dim=1)
    rows = torch.arange(best.numel(), device=y.device)
    lo = grid[rows, (best - 1).clamp_min(0)]
    hi = grid[rows, (best + 1).clamp_max(_GRID_POINTS - 1)]
    inner_lo = hi - _INV_PHI * (hi - lo)
    inner_hi = lo + _INV_PHI * (hi - lo)
    f_lo = _log_likelihood_stacked(squared, inner_lo)
    f_hi = _log_likelihood_stacked(squared, inner_hi)
    while bool(((hi - lo) > _TOLERANCE).any()):
        active = (hi - lo) > _TOLERANCE
        left = active & (f_lo >= f_hi)  # the maximum lies in [lo, inner_hi]
        right = active & ~(f_lo >= f_hi)
        new_hi = torch.where(left, inner_hi, hi)
        new_lo = torch.where(right, inner_lo, lo)
        moved_lo = torch.where(left, new_hi - _INV_PHI * (new_hi - lo), inner_lo)
        moved_hi = torch.where(right, new_lo + _INV_PHI * (hi - new_lo), inner_hi)
        next_lo = torch.where(right, inner_hi, moved_lo)
        next_hi = torch.where(left, inner_lo, moved_hi)
        f_next = _log_likelihood_stacked(squared, torch.where(left, next_lo, next_hi))
        f_lo, f_hi = (
            torch.where(left, f_next, torch.where(right, f_hi, f_lo)),
            torch.where(right, f_next, torch.where(left, f_lo, f_hi)),
        )
        inner_lo, inner_hi, lo, hi = next_lo, next_hi, new_lo, new_hi
    log_tau = torch.where(f_lo >= f_hi, inner_lo, inner_hi)
    value = torch.maximum(f_lo, f_hi)
    grid_best = values[rows, best]
    use_grid = grid_best > value  # the bracket's interior lost to its own grid point
    log_tau = torch.where(use_grid, grid[rows, best], log_tau)
    return log_tau.exp(), torch.where(use_grid, grid_best, value)
