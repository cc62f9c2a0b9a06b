"""Classification quality of a served model: accuracy, scores, calibration, error detection.

Besides accuracy, NLL, Brier score and ECE of both engines, it asks whether the MC uncertainty
flags the rows the model gets wrong (AUROC of entropy and of mutual information).

Deterministic probabilities come from the ONNX engine, MC probabilities and entropies from the MC
engine through `summarise_classification`, as `/predict` and `/uncertainty` compute them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.dataplane import LoadedModel
from service.engines.stats import summarise_classification
from service.evaluation.batches import row_batches
from service.scoring import (
    auroc,
    brier_score,
    expected_calibration_error,
    log_loss,
)

__all__ = ["ClassificationRows", "classification_metrics", "score_classification"]

Float64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ClassificationRows:
    """Labels (rows,), both engines' probabilities (rows, classes), MC entropies (rows,), nats."""

    labels: npt.NDArray[np.int64]
    deterministic: Float64
    probabilities: Float64
    predictive_entropy: Float64
    mutual_information: Float64

    @property
    def mc_errors(self) -> npt.NDArray[np.bool_]:
        """Rows the MC prediction (the arg-max of the mean probabilities) gets wrong."""
        wrong: npt.NDArray[np.bool_] = self.probabilities.argmax(axis=1) != self.labels
        return wrong


def score_classification(
    model: LoadedModel,
    features: Float64,
    labels: npt.NDArray[np.int64],
    *,
    samples: int,
    seed: int,
    batch_rows: int,
    progress: bool,
) -> ClassificationRows:
    """Run both engines over the rows in batches; batch i draws its passes with seed + i."""
    parts: dict[str, list[Float64]] = {}
    for index, rows in row_batches(len(features), batch_rows, progress=progress, label="evaluate"):
        x = features[rows]
        summary = summarise_classification(model.mc.sample(x, samples, seed + index))
        for name, value in (
            ("deterministic", model.deterministic.predict(x)),
            ("probabilities", summary.probabilities.cpu().numpy()),
            ("predictive_entropy", summary.predictive_entropy.cpu().numpy()),
            ("mutual_information", summary.mutual_information.cpu().numpy()),
        ):
            parts.setdefault(name, []).append(value)
    joined = {name: np.concatenate(values) for name, values in parts.items()}
    return ClassificationRows(labels=labels, **joined)


def classification_metrics(scored: ClassificationRows) -> dict[str, float]:
    """Scores of both engines, and the AUROC of MC entropy and mutual information for errors.

    The errors are those of the MC prediction; the AUROCs are NaN when there are none (or only
    errors).
    """
    labels, errors = scored.labels, scored.mc_errors
    metrics: dict[str, float] = {}
    for prefix, probabilities in (("", scored.deterministic), ("mc_", scored.probabilities)):
        metrics[f"{prefix}accuracy"] = float(np.mean(probabilities.argmax(axis=1) == labels))
        metrics[f"{prefix}nll"] = log_loss(probabilities, labels)
        metrics[f"{prefix}brier"] = brier_score(probabilities, labels)
        metrics[f"{prefix}ece"] = expected_calibration_error(probabilities, labels)
    metrics["mc_errors"] = float(errors.sum())
    metrics["auroc_entropy"] = auroc(scored.predictive_entropy, errors)
    metrics["auroc_mutual_information"] = auroc(scored.mutual_information, errors)
    return metrics
