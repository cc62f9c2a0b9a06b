"""The columns that scoring appends to each row, named after the model's outputs and classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch

from service.bundle import Manifest
from service.engines.stats import summarise_classification, summarise_regression

__all__ = ["ModelShape", "column_names", "scored_columns", "text_cells"]

Float64 = npt.NDArray[np.float64]
REGRESSION_STATS = ("mean", "std", "lower", "upper", "epistemic_variance", "aleatoric_variance")
CLASSIFICATION_STATS = ("mc_label", "predictive_entropy", "expected_entropy", "mutual_information")


@dataclass(frozen=True)
class ModelShape:
    """What scoring needs to know of a model, from its manifest (in process) or from the
    server's description of it (`--url`), so that both modes write the same columns."""

    task: Literal["regression", "classification"]
    features: Sequence[str]
    outputs: Sequence[str]
    classes: Sequence[str] | None

    @classmethod
    def of(cls, manifest: Manifest) -> ModelShape:
        return cls(manifest.task, manifest.features, manifest.output_names, manifest.classes)


def column_names(shape: ModelShape, uncertainty: bool) -> list[str]:
    """Regression: `<output>_prediction`, then with uncertainty `<output>_<stat>` per output.
    Classification: `label` and `probability_<class>`, then with uncertainty the MC label,
    the entropies and the mutual information (nats)."""
    if shape.task == "classification":
        names = ["label", *(f"probability_{label}" for label in shape.classes or [])]
        return names + list(CLASSIFICATION_STATS) if uncertainty else names
    names = [f"{output}_prediction" for output in shape.outputs]
    if uncertainty:
        names += [f"{output}_{stat}" for output in shape.outputs for stat in REGRESSION_STATS]
    return names


def text_cells(values: Sequence[Sequence[float]]) -> list[list[str]]:
    """Rows of numbers as CSV cells: repr of a Python float is the shortest text that reads
    back as the same number, so a value written here and one from the server's JSON agree."""
    return [[repr(float(value)) for value in row] for row in values]


def _text(values: Float64) -> list[list[str]]:
    return text_cells(values.tolist())


def scored_columns(
    manifest: Manifest,
    deterministic: Float64,
    draws: torch.Tensor | None,
    interval: float,
) -> list[list[str]]:
    """The appended cells of each row of a chunk, in `column_names` order: from the ONNX
    output (rows, outputs) and, with uncertainty, the MC passes (T, rows, outputs), summarised
    as `/uncertainty` answers."""
    if manifest.task == "classification":
        classes = manifest.classes or []
        labels = [[classes[i]] for i in deterministic.argmax(axis=1).tolist()]
        rows = [label + values for label, values in zip(labels, _text(deterministic), strict=True)]
        if draws is not None:
            summary = summarise_classification(draws)
            stats = np.stack(
                [
                    summary.predictive_entropy.cpu().numpy(),
                    summary.expected_entropy.cpu().numpy(),
                    summary.mutual_information.cpu().numpy(),
                ],
                axis=1,
            )
            mc_labels = summary.label.cpu().tolist()
            rows = [
                [*row, classes[label], *values]
                for row, label, values in zip(rows, mc_labels, _text(stats), strict=True)
            ]
        return rows
    parts = [deterministic]
    if draws is not None:
        tau = torch.tensor(manifest.tau or [], dtype=torch.float64)
        summary_r = summarise_regression(draws, tau, interval)
        stats_r = [getattr(summary_r, stat).cpu().numpy() for stat in REGRESSION_STATS]
        # Output-major, as `column_names` lists them: every statistic of the first output first.
        parts.append(np.stack(stats_r, axis=2).reshape(len(deterministic), -1))
    return _text(np.concatenate(parts, axis=1))
