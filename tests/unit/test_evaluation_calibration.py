"""The validation calibration that training records in the manifest, on hand-checked arrays."""

from __future__ import annotations

import numpy as np
import pytest

from service.training.calibration import classification_calibration, regression_calibration


def test_coverage_of_the_served_intervals_by_hand() -> None:
    # Every pass predicts 0 and tau = 1: the served intervals are those of N(0, 1),
    # +-0.674 (50 %), +-1.645 (90 %) and +-1.960 (95 %).
    targets = np.array([[0.5], [-1.0], [1.8], [2.5]])
    samples = np.zeros((3, 4, 1))
    metrics = regression_calibration(targets, samples, [1.0], "validation")
    assert metrics == pytest.approx(
        {
            "validation_coverage_50": 0.25,
            "validation_coverage_90": 0.5,
            "validation_coverage_95": 0.75,
        }
    )


def test_coverage_pools_outputs_each_with_its_own_tau() -> None:
    # Output 1 has tau = 1/100 (std 10): 5 lies inside its 50 % interval (+-6.74), 8 outside it.
    targets = np.array([[0.5, 5.0], [3.0, 8.0]])
    metrics = regression_calibration(targets, np.zeros((2, 2, 2)), [1.0, 0.01], "train")
    assert metrics["train_coverage_50"] == pytest.approx(0.5)  # 0.5 and 5.0 of the four
    assert metrics["train_coverage_95"] == pytest.approx(0.75)  # all but 3.0


def test_ece_of_both_engines() -> None:
    labels = np.array([0, 1])
    confident = np.array([[0.9, 0.1], [0.2, 0.8]])  # right, right: |1 - 0.9| and |1 - 0.8|
    hedging = np.array([[0.6, 0.4], [0.6, 0.4]])  # right, wrong: one bin, |0.5 - 0.6|
    metrics = classification_calibration(confident, hedging, labels, "validation")
    assert metrics["validation_ece"] == pytest.approx(0.15)
    assert metrics["validation_mc_ece"] == pytest.approx(0.1)
