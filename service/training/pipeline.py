"""From a CSV file to a saved, exported and validated bundle: `train_bundle`."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from service.bundle import Manifest, save_bundle
from service.bundle.manifest import Architecture
from service.errors import DataError
from service.export import ExportResult, export_onnx
from service.model import DropoutMLP, MLPConfig, Standardizer
from service.training.data import TrainingData, load_csv
from service.training.decay import prior_weight_decay
from service.training.evaluation import Evaluation, evaluate_classification, evaluate_regression
from service.training.options import TrainOptions
from service.training.provenance import library_versions, onnx_fields
from service.training.trainer import FitResult, fit

__all__ = ["run_seeds", "split_rows", "train_bundle", "training_split"]

logger = logging.getLogger(__name__)

# Rows recorded in the manifest for clients to try the model with (the playground prefills them).
EXAMPLE_ROWS = 8


def split_rows(
    rows: int, fraction: float, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Seeded shuffle into (train, validation) row indices; validation gets round(fraction * rows).

    Raises:
        DataError: too few rows to leave at least one on each side.
    """
    order = np.random.default_rng(seed).permutation(rows)
    n_validation = max(1, round(fraction * rows)) if fraction > 0.0 else 0
    if rows - n_validation < 1:
        raise DataError(
            f"the data has {rows} row(s): too few to hold out a validation fraction of {fraction}; "
            "add rows or pass --validation-fraction 0"
        )
    return order[n_validation:], order[:n_validation]


def run_seeds(seed: int) -> tuple[int, int, int, int]:
    """The seeds that one `--seed` expands to: (split, initial weights, training, MC evaluation)."""
    split, init, fit_, mc = (int(v) for v in np.random.SeedSequence(seed).generate_state(4))
    return split, init, fit_, mc


def training_split(
    rows: int, fraction: float, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The (train, validation) rows that `train_bundle` used for data of `rows` rows and `--seed`.

    Lets a trained bundle be evaluated on exactly its held-out rows (`dropserve evaluate --rows
    validation`).
    """
    return split_rows(rows, fraction, run_seeds(seed)[0])


def _decays(options: TrainOptions, config: MLPConfig, rows: int) -> list[float]:
    if options.prior_length_scale is not None and options.prior_tau is not None:
        return prior_weight_decay(options.prior_length_scale, options.prior_tau, config.rates, rows)
    return [options.weight_decay] * len(config.rates)


def _evaluate(
    options: TrainOptions,
    network: DropoutMLP,
    standardizer: Standardizer,
    data: TrainingData,
    rows: npt.NDArray[np.int64],
    prefix: str,
    seed: int,
) -> Evaluation:
    kwargs: dict[str, Any] = {"passes": options.mc_samples, "seed": seed, "prefix": prefix}
    features = data.features[rows]
    if data.classes is not None:
        labels = np.asarray(data.targets[rows], dtype=np.int64)
        return evaluate_classification(network, standardizer, features, labels, **kwargs)
    targets = np.asarray(data.targets[rows], dtype=np.float64)
    return evaluate_regression(network, standardizer, features, targets, **kwargs)


def _example_rows(data: TrainingData, rows: npt.NDArray[np.int64]) -> list[list[float]]:
    # The first of `rows`, already in shuffled order: no random numbers are drawn, so recording
    # examples leaves the weights of a seeded run byte for byte as they were.
    return [[float(v) for v in data.features[r]] for r in rows[:EXAMPLE_ROWS]]


def _training_tensors(
    data: TrainingData, standardizer: Standardizer, rows: npt.NDArray[np.int64]
) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(standardizer.features(data.features[rows]), dtype=torch.float32)
    if data.classes is not None:
        return x, torch.as_tensor(data.targets[rows], dtype=torch.int64)
    y = standardizer.targets(np.asarray(data.targets[rows], dtype=np.float64))
    return x, torch.as_tensor(y, dtype=torch.float32)


def _manifest_fields(
    options: TrainOptions,
    data: TrainingData,
    config: MLPConfig,
    standardizer: Standardizer,
    result: FitResult,
    evaluation: Evaluation,
    decays: list[float],
    rows: tuple[int, int],
    exported: ExportResult,
    examples: list[list[float]],
) -> dict[str, Any]:
    return {
        "name": options.name,
        "task": options.task,
        "description": options.description,
        "features": data.feature_names,
        "targets": data.target_names,
        "classes": data.classes,
        "architecture": Architecture.of(config).model_dump(),
        "normalization": dataclasses.asdict(standardizer),
        "tau": evaluation.tau,
        "metrics": {"train_loss": result.kept.train_loss, **evaluation.metrics},
        "examples": examples,
        "training": {
            "data_file": data.file_name,
            "data_sha256": data.sha256,
            "rows_train": rows[0],
            "rows_validation": rows[1],
            "epochs": len(result.history),
            "batch_size": options.batch_size,
            "learning_rate": options.learning_rate,
            # One number for the headline; the exact per-layer values follow.
            "weight_decay": max(decays),
            "weight_decay_per_layer": decays,
            "prior_length_scale": options.prior_length_scale,
            "prior_tau": options.prior_tau,
            "validation_fraction": options.validation_fraction,
            "patience": options.patience,
            "kept_epoch": result.kept_epoch,
            "seed": options.seed,
            "tau_samples": options.mc_samples,
        },
        "onnx": onnx_fields(exported),
        "library_versions": library_versions(),
    }


def train_bundle(options: TrainOptions) -> Manifest:
    """Train a dropout MLP on a CSV file and save it as the next version of a bundle.

    The data are fully validated before training starts; nothing is written unless training,
    evaluation and the ONNX parity check all succeed.

    Args:
        options: the run's options (see `TrainOptions`).

    Returns:
        The saved manifest; the bundle lies in `options.models_dir / name / str(version)`.

    Raises:
        DataError: the data file cannot be used (the message names the line and column).
        ExportError: the ONNX graph does not reproduce PyTorch within tolerance.
    """
    data = load_csv(options.data, options.targets, options.features, options.task)
    split_seed, init_seed, fit_seed, mc_seed = run_seeds(options.seed)
    train_rows, validation_rows = split_rows(data.rows, options.validation_fraction, split_seed)
    n_outputs = len(data.classes) if data.classes is not None else len(data.target_names)
    config = options.network_config(len(data.feature_names), n_outputs)
    if data.classes is None:
        targets = np.asarray(data.targets[train_rows], dtype=np.float64)
        standardizer = Standardizer.fit(data.features[train_rows], targets)
    else:
        standardizer = Standardizer.fit(data.features[train_rows])
    # Seed only a forked global RNG (nn.Linear draws its initial weights from it), so the
    # caller's RNG state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        network = DropoutMLP(config)
    decays = _decays(options, config, len(train_rows))
    logger.info(
        "training %s on %s: %d train / %d validation rows, %d features, %d outputs",
        options.name,
        data.file_name,
        len(train_rows),
        len(validation_rows),
        config.n_features,
        config.n_outputs,
    )
    validation = (
        _training_tensors(data, standardizer, validation_rows) if len(validation_rows) else None
    )
    result = fit(
        network,
        _training_tensors(data, standardizer, train_rows),
        validation,
        epochs=options.epochs,
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        decays=decays,
        patience=options.patience,
        seed=fit_seed,
        progress=options.progress,
    )
    if len(validation_rows):
        evaluation = _evaluate(
            options, network, standardizer, data, validation_rows, "validation", mc_seed
        )
    else:
        logger.info(
            "no validation rows: %s fitted on the %d training rows, metrics named train_*",
            "MC metrics" if data.classes is not None else "tau",
            len(train_rows),
        )
        evaluation = _evaluate(options, network, standardizer, data, train_rows, "train", mc_seed)
    exported = export_onnx(network, standardizer, name=options.name, seed=options.seed)
    fields = _manifest_fields(
        options,
        data,
        config,
        standardizer,
        result,
        evaluation,
        decays,
        (len(train_rows), len(validation_rows)),
        exported,
        _example_rows(data, validation_rows if len(validation_rows) else train_rows),
    )
    manifest = save_bundle(options.models_dir, fields, network, exported.onnx_bytes)
    logger.info(
        "saved %s version %d (%d epochs, weights of epoch %d): %s",
        manifest.name,
        manifest.version,
        len(result.history),
        result.kept_epoch,
        ", ".join(f"{key} {value:.4g}" for key, value in manifest.metrics.items()),
    )
    return manifest
