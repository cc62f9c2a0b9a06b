"""Summaries of Monte-Carlo dropout samples: predictive moments, intervals, entropies.

Regression (Gal & Ghahramani 2016, eq. 8): the predictive distribution is the mixture of the T
pass outputs, each with Gaussian observation noise of precision tau. Its variance is the sample
variance of the passes (epistemic) plus 1/tau (aleatoric); its central interval is taken from the
mixture's own quantiles rather than a Gaussian approximation.

Classification: mean softmax probabilities, their spread, the predictive entropy H[E p] and the
mutual information H[E p] - E H[p] (BALD) that isolates the model's own uncertainty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "ClassificationSummary",
    "RegressionSummary",
    "mixture_interval",
    "summarise_classification",
    "summarise_regression",
]

_NEWTON_STEPS = 60  # a cap; typically 3-6 steps reach the tolerance
# The CDF error at which a bound stops, relative to its tail mass, (1 - level) / 2: an absolute
# tolerance stops at once for a tail smaller than itself, before the bound has moved. 4e-8 of
# the 0.025 tail of a 95 % interval is the 1e-9 in probability mass that ordinary levels keep.
_TAIL_TOLERANCE = 4e-8
_CDF_TOLERANCE = 1e-9  # and never looser than this in probability mass: far below any MC error
_PRESOLVE_PASSES = 256
_JITTER_NODES = torch.special.ndtri((torch.arange(8, dtype=torch.float64) + 0.5) / 8)
_START_POINTS = 1024  # jittered points per row and output behind the starting guess
_NODES = _JITTER_NODES.numpy().reshape(-1, 1, 1, 1)
_SQRT_HALF = math.sqrt(0.5)
_SIGNS = np.array([1.0, -1.0]).reshape(2, 1, 1)  # the lower bound as is, the upper negated
_NORMAL = NormalDist()


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


def _tail_targets(level: float, passes: int) -> tuple[float, float, float, float]:
    """The mass each bound leaves in its tail, the CDF tolerance, and the two standard normal
    quantiles behind the bracket of every bound (see `_cpu_mixture_interval`)."""
    # Exact for level >= 0.5 (Sterbenz), so even 1 - 2**-53 keeps its true tail of 2**-54.
    tail = 0.5 * (1.0 - level)
    inner = passes * tail
    return (
        tail,
        min(_CDF_TOLERANCE, _TAIL_TOLERANCE * tail),
        _NORMAL.inv_cdf(tail),
        _NORMAL.inv_cdf(inner) if inner < 1.0 else math.inf,
    )


def mixture_interval(
    samples: torch.Tensor, noise_std: torch.Tensor, level: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Central `level` interval of the mixture (1/T) sum_t N(samples[t], noise_std^2).

    Both bounds of every row and output are solved together by Halley's method on the mixture
    CDF (its derivatives are the mixture density and that density's slope, cheap beside the
    CDF), started from quantiles of the noise-jittered passes and safeguarded by a bracket with a
    secant fallback: two or three steps where Newton took three or four and plain bisection
    about fifty. For large T the start comes from solving on every k-th
    pass first, which leaves one or two full-size steps. The upper bound is solved as the lower
    bound of the negated passes, and each stops at a CDF error relative to its tail, so levels up
    to the largest float below 1 get their exact quantiles.

    Args:
        samples: pass outputs, shape (T, rows, outputs).
        noise_std: observation noise std per output, shape (outputs,).
        level: interval mass in (0, 1).
    """
    scale = noise_std.to(samples).clamp_min(1e-12)
    if samples.device.type == "cpu":
        # NumPy: its calls cost ~1 us on small arrays where torch's cost ~4 us, and a T=100
        # single-row request makes about fifty; measured 2-2.5x faster from 1 row x T=100 to
        # 16 rows x T=10,000 with one thread.
        low, high = _cpu_mixture_interval(samples.numpy(), scale.numpy(), level)
        return torch.from_numpy(low), torch.from_numpy(high)
    return _torch_mixture_interval(samples, scale, level)


def _torch_mixture_interval(
    samples: torch.Tensor, scale: torch.Tensor, level: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """`mixture_interval` in torch, for samples on an accelerator."""
    passes = samples.shape[0]
    tail, tolerance, z, w = _tail_targets(level, passes)
    if passes > 2 * _PRESOLVE_PASSES:
        low, high = _torch_mixture_interval(samples[:: passes // _PRESOLVE_PASSES], scale, level)
    else:
        # Start from the quantiles of the passes jittered by the noise at fixed normal nodes:
        # a close guess even for skewed passes, where the Gaussian start overshoots.
        stride = max(1, passes * _JITTER_NODES.numel() // _START_POINTS)
        nodes = _JITTER_NODES.to(samples).view(-1, 1, 1, 1)
        jittered = samples[::stride].unsqueeze(0) + nodes * scale
        # Sorted along a contiguous last axis: sorting along the first is ~50x slower here,
        # and torch.quantile slower still.
        ordered = jittered.flatten(0, 1).movedim(0, -1).contiguous().sort(dim=-1).values
        q = torch.tensor([tail, 1.0 - tail], dtype=samples.dtype, device=samples.device)
        picks = (q * (ordered.shape[-1] - 1)).round().long()
        low, high = ordered[..., picks].movedim(-1, 0)
    # Both bounds as lower tails in a bracket from the passes' extremes, as in
    # `_cpu_mixture_interval`, which says why.
    y = torch.stack([low, -high])  # (2, rows, outputs)
    passes_last = samples.movedim(0, -1).contiguous()  # sums in the same order for any rows
    signed = torch.stack([passes_last, -passes_last])  # (2, rows, outputs, T)
    least, most = signed.amin(dim=-1), signed.amax(dim=-1)
    lo = least + z * scale
    hi = torch.minimum(most + z * scale, least + w * scale)
    y = torch.minimum(torch.maximum(y, lo), hi)
    error_lo, error_hi = torch.full_like(y, -tail), torch.full_like(y, 1.0 - tail)
    density_norm = 1.0 / (math.sqrt(2.0 * math.pi) * scale)
    scale_last = scale.unsqueeze(-1)
    for _ in range(_NEWTON_STEPS):
        u = (y.unsqueeze(-1) - signed) / scale_last  # (2, rows, outputs, T)
        # The normal CDF as erfc: torch's ndtr computes it so too, at twice the calls.
        error = torch.erfc(u * -_SQRT_HALF).mean(dim=-1) * 0.5 - tail
        settled = error.abs() < tolerance
        if bool(settled.all()):
            break
        bump = torch.exp(-0.5 * u * u)
        density = bump.mean(dim=-1) * density_norm  # the CDF's first derivative
        slope = (u * bump).mean(dim=-1) * (-density_norm / scale)  # and its second
        below = error < 0
        lo, error_lo = torch.where(below, y, lo), torch.where(below, error, error_lo)
        hi, error_hi = torch.where(below, hi, y), torch.where(below, error_hi, error)
        step = error / density
        halley = y - step / (1.0 - 0.5 * step * slope / density)
        # Where the step leaves the bracket (a root next to a bracket end, or a flat density),
        # fall back to the secant through the bracket ends, which lands inside and near such
        # a root at once (bisection would crawl there one bit per step).
        secant = (lo * error_hi - hi * error_lo) / (error_hi - error_lo)
        stepped = torch.where((halley > lo) & (halley < hi), halley, secant)
        # Each bound of each row stops where it alone met the tolerance, so an answer does not
        # depend on the rows (of other requests, batched) solved beside it.
        y = torch.where(settled, y, stepped)
    return y[0], -y[1]


Array = npt.NDArray[np.float64]


def _cpu_mixture_interval(samples: Array, scale: Array, level: float) -> tuple[Array, Array]:
    """`mixture_interval` step for step in NumPy (same start, same safeguarded Halley steps,
    same tolerance; no presolve, which saved less than it cost here); erfc comes from torch."""
    passes = samples.shape[0]
    tail, tolerance, z, w = _tail_targets(level, passes)
    stride = max(1, passes * _JITTER_NODES.numel() // _START_POINTS)
    jittered = (samples[::stride][None] + _NODES * scale).reshape(-1, *samples.shape[1:])
    last = jittered.shape[0] - 1
    picks = [round(tail * last), round((1.0 - tail) * last)]  # half to even, as torch rounds
    start = np.partition(jittered, picks, axis=0)[picks]  # the same order statistics as a sort
    # Both bounds as lower tails: the upper bound is minus the lower bound of the negated
    # passes. Each then solves F(y) = tail with F a sum of small normal CDFs, which keeps its
    # relative precision however small the tail, where 1 - F near 1 rounds away below 1e-16.
    y = start * _SIGNS  # (2, rows, outputs)
    # Passes on the last, contiguous axis: every sum over them then adds in the same order
    # whatever the number of rows, so a row's bounds are the same alone or batched.
    centred = np.ascontiguousarray(np.moveaxis(samples / scale, 0, -1))  # (rows, outputs, T)
    signed = centred * _SIGNS[..., None]  # (2, rows, outputs, T)
    # A bracket from the passes' extremes: with every centre at or above `least`,
    # F(least + z scale) <= Phi(z) = tail; with every centre at or below `most`,
    # F(most + z scale) >= tail; and the nearest centre alone gives F(least + w scale) >=
    # Phi(w) / T = tail. That last end is within a noise std of the bound in the far tail,
    # where the jittered start (the least jittered pass) lies several stds away.
    least, most = signed.min(axis=-1), signed.max(axis=-1)
    lo = (least + z) * scale
    hi = np.minimum(most + z, least + w) * scale
    y = np.minimum(np.maximum(y, lo), hi)
    error_lo, error_hi = np.full_like(y, -tail), np.full_like(y, 1.0 - tail)
    density_norm = 1.0 / (math.sqrt(2.0 * math.pi) * scale * passes)
    slope_norm = -density_norm / scale
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for _ in range(_NEWTON_STEPS):
            u = (y / scale)[..., None] - signed  # (2, rows, outputs, T)
            tails = torch.erfc(torch.from_numpy(u * -_SQRT_HALF)).numpy()  # 2 x the normal CDF
            error = np.add.reduce(tails, axis=-1) * (0.5 / passes) - tail
            settled = np.abs(error) < tolerance
            if settled.all():
                break
            bump = np.exp(-0.5 * u * u)
            density = np.add.reduce(bump, axis=-1) * density_norm
            slope = np.add.reduce(u * bump, axis=-1) * slope_norm
            below = error < 0
            lo, error_lo = np.where(below, y, lo), np.where(below, error, error_lo)
            hi, error_hi = np.where(below, hi, y), np.where(below, error_hi, error)
            step = error / density
            halley = y - step / (1.0 - 0.5 * step * slope / density)
            inside = (halley > lo) & (halley < hi)
            if not inside.all():  # usually it is; the secant is only needed where it is not
                secant = (lo * error_hi - hi * error_lo) / (error_hi - error_lo)
                halley = np.where(inside, halley, secant)
            y = np.where(settled, y, halley)  # as in torch: each element stops on its own
    return y[0], -y[1]


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
    if samples.device.type == "cpu":  # NumPy: a fraction of torch's per-call cost (see above)
        passes, inverse_tau = samples.numpy(), 1.0 / tau.numpy()
        # Moments over a contiguous last axis: summed in the same order for any number of rows,
        # so a request's numbers are the same alone or summarised with a batch.
        passes_last = np.ascontiguousarray(np.moveaxis(passes, 0, -1))
        mean_, epistemic_ = passes_last.mean(axis=-1), passes_last.var(axis=-1)
        aleatoric_ = np.broadcast_to(inverse_tau, mean_.shape).copy()
        variance_ = epistemic_ + aleatoric_
        low, high = _cpu_mixture_interval(passes, np.maximum(np.sqrt(inverse_tau), 1e-12), level)
        return RegressionSummary(
            *(
                torch.from_numpy(a)
                for a in (mean_, variance_, np.sqrt(variance_), epistemic_, aleatoric_, low, high)
            )
        )
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
    # Passes last and contiguous: every reduction adds in the same order for any number of
    # rows (see summarise_regression).
    per_row = probabilities.double().movedim(0, -1).contiguous()  # (rows, classes, T)
    mean = per_row.mean(dim=-1)
    variance = per_row.var(dim=-1, correction=0)
    predictive = _entropy(mean)
    expected = (-torch.special.xlogy(per_row, per_row).sum(dim=-2)).mean(dim=-1)
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
