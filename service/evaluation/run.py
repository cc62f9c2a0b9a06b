"""Score a bundle on a labelled CSV through the engines that serve it: `dropserve evaluate`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.bundle import load_bundle
from service.dataplane import LoadedModel
from service.engines import MCDropoutEngine, OnnxEngine
from service.errors import DataError
from service.evaluation.classification import (
    ClassificationRows,
    classification_metrics,
    score_classification,
)
from service.evaluation.labelled import RowSelection, load_labelled
from service.evaluation.regression import RegressionRows, regression_metrics, score_regression

__all__ = ["EvaluationOptions", "EvaluationReport", "evaluate_model", "load_model"]

# What each metric is, for the table; JSON keys are the metric names themselves.
DESCRIPTIONS = {
    "rmse": "RMSE, deterministic (ONNX)",
    "mc_rmse": "RMSE, MC mean",
    "log_likelihood": "test log-likelihood per row, MC mixture with the bundle's tau (nats)",
    "coverage_50": "share of targets inside the served 50 % interval",
    "coverage_90": "share of targets inside the served 90 % interval",
    "coverage_95": "share of targets inside the served 95 % interval",
    "width_50": "mean width of the 50 % interval",
    "width_90": "mean width of the 90 % interval",
    "width_95": "mean width of the 95 % interval",
    "std_error_pearson": "correlation of predicted std with |error| (Pearson)",
    "std_error_spearman": "correlation of predicted std with |error| (Spearman)",
    "accuracy": "accuracy, deterministic (ONNX)",
    "nll": "NLL, deterministic (nats)",
    "brier": "Brier score, deterministic",
    "ece": "expected calibration error (15 bins), deterministic",
    "mc_accuracy": "accuracy, MC mean probabilities",
    "mc_nll": "NLL, MC mean probabilities (nats)",
    "mc_brier": "Brier score, MC mean probabilities",
    "mc_ece": "expected calibration error (15 bins), MC mean probabilities",
    "mc_errors": "rows the MC prediction gets wrong",
    "auroc_entropy": "AUROC of predictive entropy for finding the wrong rows",
    "auroc_mutual_information": "AUROC of mutual information for finding the wrong rows",
}


@dataclass(frozen=True)
class EvaluationOptions:
    """What to score a model on: rows of a labelled CSV, T passes, a seed."""

    data: Path
    rows: RowSelection = "all"
    samples: int = 1000
    seed: int = 0
    batch_rows: int = 256
    progress: bool = True

    def __post_init__(self) -> None:
        if self.samples < 1 or self.batch_rows < 1:
            raise ValueError("samples and batch rows must be at least 1")
        if self.seed < 0:
            raise ValueError(f"the seed must be 0 or more, got {self.seed}")


@dataclass(frozen=True)
class EvaluationReport:
    """The scores of one evaluation and the per-row values behind them (for the plots)."""

    model: str
    version: int
    task: str
    data: str
    rows: RowSelection
    n_rows: int
    samples: int
    seed: int
    device: str
    metrics: dict[str, float]
    scored: RegressionRows | ClassificationRows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN (an AUROC without errors to find) becomes null."""
        header = {
            key: getattr(self, key)
            for key in ("model", "version", "task", "data", "rows", "n_rows", "samples", "seed")
        }
        metrics = {k: (None if math.isnan(v) else v) for k, v in self.metrics.items()}
        return {**header, "device": self.device, "metrics": metrics}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_table(self) -> str:
        """Aligned text: a header line, then one metric per line with what it means."""
        lines = [
            f"{self.model} v{self.version} ({self.task}) on {self.data}: {self.n_rows} rows "
            f"({self.rows}), T={self.samples} passes, seed {self.seed}, {self.device}",
        ]
        width = max(len(name) for name in self.metrics)
        for name, value in self.metrics.items():
            shown = "n/a" if math.isnan(value) else f"{value:.4f}"
            if name == "mc_errors":
                shown = f"{value:.0f}"
            lines.append(f"  {name:<{width}}  {shown:>10}  {DESCRIPTIONS.get(name, '')}")
        return "\n".join(lines)


def load_model(
    bundle: Path, device: torch.device, chunk_elements: int, threads: int = 0
) -> LoadedModel:
    """Load and verify a bundle with both engines, as the server does (without warm-up)."""
    loaded = load_bundle(bundle)
    deterministic = OnnxEngine(loaded, device, threads)
    deterministic.load()
    mc = MCDropoutEngine(loaded, device, chunk_elements)
    mc.load()
    return LoadedModel(loaded, deterministic, mc)


def evaluate_model(options: EvaluationOptions, model: LoadedModel) -> EvaluationReport:
    """Score `model` on the chosen rows of `options.data`.

    Args:
        options: the data, rows, passes and seed.
        model: the loaded bundle (see `load_model`).

    Returns:
        The metrics (regression or classification) and the per-row values behind them.

    Raises:
        DataError: the CSV lacks a column, has a bad cell or an unknown label, or the row
            selection cannot be re-created for it.
    """
    manifest = model.manifest
    data = load_labelled(options.data, manifest, options.rows)
    if data.rows == 0:
        raise DataError(f"{data.file_name}: no rows to evaluate")
    kwargs: dict[str, Any] = {
        "samples": options.samples,
        "seed": options.seed,
        "batch_rows": options.batch_rows,
        "progress": options.progress,
    }
    scored: RegressionRows | ClassificationRows
    if manifest.task == "classification":
        labels = np.asarray(data.targets, dtype=np.int64)
        scored = score_classification(model, data.features, labels, **kwargs)
        metrics = classification_metrics(scored)
    else:
        targets = np.asarray(data.targets, dtype=np.float64)
        scored = score_regression(model, data.features, targets, **kwargs)
        metrics = regression_metrics(scored)
    return EvaluationReport(
        model=manifest.name,
        version=manifest.version,
        task=manifest.task,
        data=data.file_name,
        rows=options.rows,
        n_rows=data.rows,
        samples=options.samples,
        seed=options.seed,
        device=str(model.mc.device),
        metrics=metrics,
        scored=scored,
    )
