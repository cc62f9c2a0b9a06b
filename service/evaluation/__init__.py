"""Uncertainty quality: metrics, and `dropserve evaluate` over a bundle's served engines.

Only the metrics are imported here: they depend on nothing else in dropserve, so training can
score its validation calibration with them without importing the serving side. The evaluation of
a bundle lives in `service.evaluation.run`, its plots in `service.evaluation.plots`.
"""

from service.evaluation.metrics import (
    ECE_BINS,
    Reliability,
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
