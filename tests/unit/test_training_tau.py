"""tau: the MC predictive log-likelihood and its continuous maximisation over tau."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
import torch

from service.training import fit_tau, fit_tau_stacked, mc_log_likelihood


def synthetic(
    sigma: float, rows: int = 2000, passes: int = 100, spread: float = 0.05, seed: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """y = f(x) + N(0, sigma^2); passes = f(x) + a small epistemic jitter."""
    rng = np.random.default_rng(seed)
    f = np.sin(rng.uniform(-3, 3, size=rows)) * 10.0
    y = f + sigma * rng.normal(size=rows)
    samples = f[None, :] + spread * rng.normal(size=(passes, rows))
    return y, samples


def test_log_likelihood_with_one_pass_is_the_gaussian_log_density() -> None:
    y = np.array([1.0, -2.0, 0.5])
    yhat = np.array([[0.5, -1.0, 0.0]])
    tau = 2.5
    expected = np.mean(0.5 * math.log(tau / (2 * math.pi)) - 0.5 * tau * (y - yhat[0]) ** 2)
    assert mc_log_likelihood(y, yhat, tau) == pytest.approx(expected, rel=1e-12)


def test_log_likelihood_of_identical_passes_equals_one_pass() -> None:
    y, samples = synthetic(1.0, rows=50, passes=1)
    repeated = np.repeat(samples, 7, axis=0)
    assert mc_log_likelihood(y, repeated, 0.7) == pytest.approx(
        mc_log_likelihood(y, samples, 0.7), rel=1e-12
    )


@pytest.mark.parametrize("sigma", [0.1, 1.0, 30.0])
def test_fitted_noise_variance_is_close_to_the_true_one(sigma: float) -> None:
    y, samples = synthetic(sigma, spread=0.05 * sigma)
    fit = fit_tau(y, samples)
    # 2000 rows: the sample variance is within ~10 % of sigma^2 with overwhelming probability.
    assert 1.0 / fit.tau == pytest.approx(sigma**2, rel=0.1)
    assert fit.log_likelihood == pytest.approx(mc_log_likelihood(y, samples, fit.tau), rel=1e-12)


def test_optimum_is_at_least_as_good_as_any_point_of_a_dense_grid() -> None:
    # A wide spread of passes makes the likelihood a genuine mixture, not a single Gaussian.
    y, samples = synthetic(0.5, rows=300, passes=50, spread=1.0, seed=3)
    fit = fit_tau(y, samples)
    grid = np.exp(np.linspace(math.log(1e-4), math.log(1e4), 4001))
    best_on_grid = max(mc_log_likelihood(y, samples, float(tau)) for tau in grid)
    assert fit.log_likelihood >= best_on_grid - 1e-12
    # ...and it is a continuous optimum, not a grid point: the derivative in log tau vanishes.
    step = 1e-4
    left = mc_log_likelihood(y, samples, fit.tau * math.exp(-step))
    right = mc_log_likelihood(y, samples, fit.tau * math.exp(step))
    assert abs(right - left) / (2 * step) < 1e-5


def test_tau_is_finite_when_the_passes_hit_the_targets_exactly() -> None:
    y = np.array([1.0, 2.0, 3.0])
    fit = fit_tau(y, np.stack([y, y + 1.0]))
    assert math.isfinite(fit.tau)
    assert fit.tau > 0.0


def test_stacked_tau_fit_equals_the_one_model_fit() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=(3, 40)) * np.array([[0.1], [1.0], [30.0]])
    samples = y[:, None, :] + rng.normal(size=(3, 25, 40)) * np.array([[[0.5]], [[0.3]], [[9.0]]])
    taus, values = fit_tau_stacked(torch.as_tensor(y), torch.as_tensor(samples))
    for m in range(3):
        expected = fit_tau(y[m], samples[m])
        assert taus[m].item() == pytest.approx(expected.tau, rel=1e-6)
        assert values[m].item() == pytest.approx(expected.log_likelihood, rel=1e-9)
