"""Evaluation metrics against values worked out by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from service.engines.stats import mixture_interval
from service.scoring import (
    auroc,
    brier_score,
    central_coverage,
    expected_calibration_error,
    interval_coverage,
    log_loss,
    mixture_cdf,
    mixture_log_likelihood,
    pearson,
    reliability,
    rmse,
    spearman,
)
from service.training import mc_log_likelihood

# Four rows, two classes: confidences 0.9 (right), 0.8 (wrong), 0.7 (right), 0.55 (wrong).
PROBS = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
LABELS = np.array([0, 1, 1, 0])


def test_rmse() -> None:
    assert rmse([1.0, 2.0, 3.0], [1.0, 0.0, 6.0]) == pytest.approx(math.sqrt((0 + 4 + 9) / 3))


def test_mixture_log_likelihood_by_hand() -> None:
    # Row 0: passes 0 and 2 around y = 0; row 1: passes 0 and 1 around y = 1; tau = 1.
    y = np.array([0.0, 1.0])
    samples = np.array([[0.0, 0.0], [2.0, 1.0]])
    constant = -math.log(2) - 0.5 * math.log(2 * math.pi)
    row0 = math.log(math.exp(0.0) + math.exp(-2.0)) + constant
    row1 = math.log(math.exp(-0.5) + math.exp(0.0)) + constant
    np.testing.assert_allclose(mixture_log_likelihood(y, samples, 1.0), [row0, row1], rtol=1e-12)
    # tau enters twice: in the exponent and as 0.5 log tau.
    tau = 4.0
    row0_tau = math.log(1.0 + math.exp(-0.5 * tau * 4.0)) + constant + 0.5 * math.log(tau)
    assert mixture_log_likelihood(y, samples, tau)[0] == pytest.approx(row0_tau, rel=1e-12)


def test_mixture_log_likelihood_agrees_with_the_tau_fit() -> None:
    rng = np.random.default_rng(0)
    y, samples = rng.normal(size=30), rng.normal(size=(7, 30))
    mean = float(mixture_log_likelihood(y, samples, 0.8).mean())
    assert mean == pytest.approx(mc_log_likelihood(y, samples, 0.8), rel=1e-12)


def test_interval_coverage_counts_closed_intervals() -> None:
    y = [1.0, 2.0, 3.0, 4.0]
    assert interval_coverage(y, [0.0, 2.5, 3.0, 5.0], [2.0, 3.0, 3.0, 6.0]) == 0.5


def test_central_coverage_from_pit() -> None:
    # |PIT - 0.5| = 0, 0.3, 0.47, 0.24: inside the 50 % interval when <= 0.25, and so on.
    coverage = central_coverage([0.5, 0.2, 0.97, 0.74], [0.5, 0.9, 0.95])
    np.testing.assert_allclose(coverage, [0.5, 0.75, 1.0])


def test_mixture_cdf_of_one_pass_is_the_normal_cdf() -> None:
    assert mixture_cdf([1.96], [[0.0]], 1.0)[0] == pytest.approx(0.9750021, abs=1e-6)
    assert mixture_cdf([3.0], [[1.0], [5.0]], 2.0)[0] == pytest.approx(
        0.5 * (0.8413447 + 0.1586553), abs=1e-6
    )


def test_pit_coverage_is_the_served_interval_coverage() -> None:
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(40, 200)) * 2.0 + rng.normal(size=200)
    y = rng.normal(size=200) * 2.5
    pit = mixture_cdf(y, samples, 0.7)
    for level in (0.5, 0.9, 0.95):
        lower, upper = mixture_interval(
            torch.as_tensor(samples)[:, :, None], torch.tensor([0.7], dtype=torch.float64), level
        )
        served = interval_coverage(y, lower[:, 0].numpy(), upper[:, 0].numpy())
        assert central_coverage(pit, [level])[0] == pytest.approx(served)


def test_log_loss_and_brier_by_hand() -> None:
    two = PROBS[:2], LABELS[:2]
    assert log_loss(*two) == pytest.approx(-(math.log(0.9) + math.log(0.2)) / 2)
    # (0.1^2 + 0.1^2) and (0.8^2 + 0.8^2)
    assert brier_score(*two) == pytest.approx((0.02 + 1.28) / 2)


def test_ece_with_every_row_in_its_own_bin() -> None:
    # 15 bins of width 1/15: the four confidences fall in four different bins.
    expected = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(0 - 0.55)) / 4
    assert expected_calibration_error(PROBS, LABELS) == pytest.approx(expected)


def test_ece_pools_rows_of_one_bin() -> None:
    # Two bins, (0, 0.5] and (0.5, 1]: all four rows share the upper bin.
    confidence = (0.9 + 0.8 + 0.7 + 0.55) / 4
    assert expected_calibration_error(PROBS, LABELS, bins=2) == pytest.approx(confidence - 0.5)
    table = reliability(PROBS, LABELS, bins=2)
    assert table.counts.tolist() == [0, 4]
    assert table.accuracy[1] == 0.5


def test_ece_of_a_perfectly_calibrated_bin_is_zero() -> None:
    probs = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("scores", "positives", "expected"),
    [
        ([0.1, 0.4, 0.35, 0.8], [False, True, False, True], 1.0),
        ([0.1, 0.4, 0.35, 0.8], [False, False, True, True], 0.75),  # 0.35 < 0.4 loses one pair
        ([0.9, 0.1, 0.2], [False, True, True], 0.0),
        ([1.0, 1.0], [True, False], 0.5),  # a tie counts one half
        ([0.3, 0.3, 0.5, 0.1], [True, False, True, False], 0.875),  # (1 + 0.5 + 1 + 1) / 4
    ],
)
def test_auroc_by_hand(scores: list[float], positives: list[bool], expected: float) -> None:
    assert auroc(scores, positives) == pytest.approx(expected)


def test_auroc_without_both_classes_is_nan() -> None:
    assert math.isnan(auroc([0.1, 0.2], [False, False]))


def test_correlations() -> None:
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(1.0)
    assert spearman([1.0, 2.0, 3.0, 4.0], [1.0, 8.0, 27.0, 64.0]) == pytest.approx(1.0)
    assert math.isnan(pearson([1.0, 1.0], [0.0, 1.0]))
