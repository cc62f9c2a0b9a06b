"""Predictive summaries of MC samples: moments, mixture intervals, entropies."""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
import pytest
import torch

from service.engines.stats import (
    _torch_mixture_interval,
    mixture_interval,
    summarise_classification,
    summarise_regression,
)

LOG2 = math.log(2.0)


def mixture_cdf(x: float, centres: np.ndarray, sigma: float) -> float:
    """CDF of (1/T) sum_t N(centres[t], sigma^2), computed independently of the code under test."""
    return float(np.mean([NormalDist(float(c), sigma).cdf(x) for c in centres]))


def test_regression_moments_match_numpy() -> None:
    rng = np.random.default_rng(0)
    samples = rng.normal(loc=[3.0, -20.0], scale=[0.5, 4.0], size=(400, 5, 2))
    tau = np.array([2.0, 0.25])
    summary = summarise_regression(torch.as_tensor(samples), torch.as_tensor(tau), level=0.9)
    np.testing.assert_allclose(summary.mean.numpy(), samples.mean(axis=0), rtol=1e-12)
    epistemic = samples.var(axis=0, ddof=0)
    np.testing.assert_allclose(summary.epistemic_variance.numpy(), epistemic, rtol=1e-10)
    np.testing.assert_allclose(summary.aleatoric_variance.numpy(), np.broadcast_to(1 / tau, (5, 2)))
    np.testing.assert_allclose(summary.variance.numpy(), epistemic + 1.0 / tau, rtol=1e-10)
    np.testing.assert_allclose(summary.std.numpy(), np.sqrt(epistemic + 1.0 / tau), rtol=1e-10)
    assert summary.mean.dtype == torch.float64


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95])
def test_identical_passes_give_the_gaussian_interval(level: float) -> None:
    value, tau = 7.25, 4.0
    samples = torch.full((50, 3, 1), value)
    summary = summarise_regression(samples, torch.tensor([tau]), level=level)
    sigma = 1.0 / math.sqrt(tau)
    z = NormalDist().inv_cdf(0.5 + level / 2)  # 1.959964 for 95 %
    assert torch.count_nonzero(summary.epistemic_variance) == 0
    torch.testing.assert_close(summary.variance, torch.full((3, 1), 1.0 / tau, dtype=torch.float64))
    torch.testing.assert_close(
        summary.lower, torch.full((3, 1), value - z * sigma, dtype=torch.float64)
    )
    torch.testing.assert_close(
        summary.upper, torch.full((3, 1), value + z * sigma, dtype=torch.float64)
    )


Interval = Callable[[torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]
# The CPU solves in NumPy; the torch implementation serves accelerators and is checked here too.
SOLVERS: dict[str, Interval] = {"cpu": mixture_interval, "torch": _torch_mixture_interval}


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("passes", [40, 1500])  # 1500: the torch solver presolves on a subset
@pytest.mark.parametrize("level", [0.68, 0.95])
@pytest.mark.parametrize("noise_std", [0.05, 1.0, 5.0])
def test_mixture_interval_holds_the_requested_mass(
    solver: str, passes: int, level: float, noise_std: float
) -> None:
    rng = np.random.default_rng(1)
    # Skewed, bimodal pass outputs: nothing like one Gaussian.
    size = passes // 4
    centres = np.concatenate(
        [rng.exponential(1.0, size=passes - size), 6.0 + rng.normal(0, 0.3, size=size)]
    )
    samples = torch.as_tensor(centres, dtype=torch.float64).reshape(-1, 1, 1)
    noise = torch.tensor([noise_std], dtype=torch.float64)
    lower, upper = SOLVERS[solver](samples, noise, level)
    lo, hi = lower.item(), upper.item()
    tail = (1.0 - level) / 2
    assert mixture_cdf(lo, centres, noise_std) == pytest.approx(tail, abs=1e-9)
    assert mixture_cdf(hi, centres, noise_std) == pytest.approx(1.0 - tail, abs=1e-9)
    mass = mixture_cdf(hi, centres, noise_std) - mixture_cdf(lo, centres, noise_std)
    assert mass == pytest.approx(level, abs=1e-9)


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_row_gets_the_same_bounds_alone_or_beside_others(solver: str) -> None:
    """Batched requests are summarised together: each row's bounds must not depend on that."""
    rng = np.random.default_rng(4)
    # Rows that converge after different numbers of steps: tight, bimodal, heavy-tailed.
    tight = 5.0 + 0.01 * rng.normal(size=200)
    bimodal = np.concatenate([rng.exponential(1.0, 150), 8.0 + rng.normal(0, 0.2, 50)])
    heavy = 3.0 * rng.standard_t(2, size=200)
    samples = torch.as_tensor(np.stack([tight, bimodal, heavy], axis=1)[..., None])
    noise = torch.tensor([0.05], dtype=torch.float64)
    together = SOLVERS[solver](samples, noise, 0.9)
    for row in range(3):
        alone = SOLVERS[solver](samples[:, row : row + 1], noise, 0.9)
        for both, one in zip(together, alone, strict=True):
            assert torch.equal(both[row : row + 1], one)


def test_both_solvers_agree_on_many_rows_and_outputs() -> None:
    rng = np.random.default_rng(3)
    samples = torch.as_tensor(rng.standard_t(3, size=(300, 7, 2)) * [1.0, 20.0])
    noise = torch.tensor([0.3, 4.0], dtype=torch.float64)
    for level in (0.5, 0.9, 0.999):
        cpu = mixture_interval(samples, noise, level)
        other = _torch_mixture_interval(samples, noise, level)
        for ours, theirs in zip(cpu, other, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)


def test_regression_interval_is_the_mixture_interval_per_row_and_output() -> None:
    rng = np.random.default_rng(2)
    samples = torch.as_tensor(rng.gamma(2.0, size=(25, 3, 2)))
    tau = torch.tensor([1.0, 16.0], dtype=torch.float64)
    summary = summarise_regression(samples, tau, level=0.8)
    for row in range(3):
        for out in range(2):
            centres = samples[:, row, out].numpy()
            sigma = 1.0 / math.sqrt(tau[out].item())
            lo = mixture_cdf(summary.lower[row, out].item(), centres, sigma)
            hi = mixture_cdf(summary.upper[row, out].item(), centres, sigma)
            assert (lo, hi) == (pytest.approx(0.1, abs=1e-9), pytest.approx(0.9, abs=1e-9))


def test_identical_confident_passes_have_no_mutual_information() -> None:
    p = torch.tensor([0.98, 0.01, 0.01], dtype=torch.float64)
    summary = summarise_classification(p.expand(40, 2, 3))
    entropy = -(p * p.log()).sum()
    torch.testing.assert_close(summary.predictive_entropy, entropy.expand(2))
    torch.testing.assert_close(summary.expected_entropy, entropy.expand(2))
    assert summary.mutual_information.abs().max().item() < 1e-12
    assert torch.count_nonzero(summary.variance) == 0
    assert summary.label.tolist() == [0, 0]


def test_disagreeing_one_hot_passes_have_log2_entropy_and_mutual_information() -> None:
    probabilities = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], dtype=torch.float64)
    summary = summarise_classification(probabilities)
    torch.testing.assert_close(
        summary.probabilities, torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    )
    assert summary.predictive_entropy.item() == pytest.approx(LOG2, rel=1e-12)
    assert summary.expected_entropy.item() == 0.0  # 0 log 0 = 0, not nan
    assert summary.mutual_information.item() == pytest.approx(LOG2, rel=1e-12)
    torch.testing.assert_close(summary.std, torch.tensor([[0.5, 0.5]], dtype=torch.float64))


def test_classification_summary_matches_numpy_and_mutual_information_is_non_negative() -> None:
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet([0.5, 1.0, 2.0, 0.3], size=(60, 20))
    summary = summarise_classification(torch.as_tensor(probabilities))
    mean = probabilities.mean(axis=0)
    predictive = -(mean * np.log(mean)).sum(axis=-1)
    expected = -(probabilities * np.log(probabilities)).sum(axis=-1).mean(axis=0)
    np.testing.assert_allclose(summary.probabilities.numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(summary.variance.numpy(), probabilities.var(axis=0), rtol=1e-10)
    np.testing.assert_allclose(summary.predictive_entropy.numpy(), predictive, rtol=1e-10)
    np.testing.assert_allclose(summary.expected_entropy.numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(
        summary.mutual_information.numpy(), predictive - expected, atol=1e-12
    )
    assert (summary.mutual_information >= 0).all()
    assert (summary.mutual_information <= math.log(4) + 1e-12).all()
    assert summary.label.tolist() == mean.argmax(axis=-1).tolist()


def tail_mass(x: float, centres: np.ndarray, sigma: float, *, upper: bool) -> float:
    """Mixture mass below x (or above it), each term as erfc so that it keeps its relative
    precision deep in the tail, where 1 - CDF rounds to 0; independent of the code under test."""
    sign = 1.0 if upper else -1.0
    terms = [0.5 * math.erfc(sign * (x - float(c)) / (sigma * math.sqrt(2.0))) for c in centres]
    return math.fsum(terms) / len(centres)


def exact_quantile(tail: float, centres: np.ndarray, sigma: float, *, upper: bool) -> float:
    """The bound leaving `tail` outside, by bisection in float64 to the last representable bit."""
    low = float(centres.min()) - 50.0 * sigma
    high = float(centres.max()) + 50.0 * sigma
    while True:
        middle = 0.5 * (low + high)
        if middle in (low, high):
            return middle
        outside = tail_mass(middle, centres, sigma, upper=upper)
        if (outside > tail) == upper:
            low = middle
        else:
            high = middle


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("level", [1 - 1e-6, 1 - 1e-10, 1 - 1e-14, 0.9999999999999999])
def test_extreme_levels_give_the_exact_mixture_quantiles(solver: str, level: float) -> None:
    """A CDF tolerance absolute in probability mass stops at once when the tail is smaller than
    it: 0.9999999999999999 came back as the interval of a level near 1 - 1e-9."""
    rng = np.random.default_rng(5)
    centres = 60.0 + 8.0 * rng.standard_t(4, size=120)
    sigma = 5.0
    samples = torch.as_tensor(centres).reshape(-1, 1, 1)
    lower, upper = SOLVERS[solver](samples, torch.tensor([sigma], dtype=torch.float64), level)
    tail = (1.0 - level) / 2
    low = exact_quantile(tail, centres, sigma, upper=False)
    high = exact_quantile(tail, centres, sigma, upper=True)
    assert lower.item() == pytest.approx(low, abs=1e-6 * sigma)
    assert upper.item() == pytest.approx(high, abs=1e-6 * sigma)
    assert tail_mass(lower.item(), centres, sigma, upper=False) == pytest.approx(tail, rel=1e-6)
    assert tail_mass(upper.item(), centres, sigma, upper=True) == pytest.approx(tail, rel=1e-6)


@pytest.mark.parametrize("solver", SOLVERS)
def test_extreme_levels_on_many_rows_and_a_tight_noise(solver: str) -> None:
    """Rows far apart with a noise std far below their spread: the far tail of each row is its
    nearest pass alone, and the bracket has to find it without the jittered start."""
    rng = np.random.default_rng(6)
    samples = torch.as_tensor(rng.normal(size=(300, 4, 1)) * [[[1.0], [50.0], [1e-3], [1e4]]])
    sigma = 0.01
    level = 1 - 2e-12
    tail = (1.0 - level) / 2  # 9.99978e-13: the float nearest 1 - 2e-12 is not that number
    lower, upper = SOLVERS[solver](samples, torch.tensor([sigma], dtype=torch.float64), level)
    for row in range(4):
        centres = samples[:, row, 0].numpy()
        low = exact_quantile(tail, centres, sigma, upper=False)
        high = exact_quantile(tail, centres, sigma, upper=True)
        assert lower[row, 0].item() == pytest.approx(low, abs=1e-6 * sigma)
        assert upper[row, 0].item() == pytest.approx(high, abs=1e-6 * sigma)
