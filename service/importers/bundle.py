"""From an `ImportedNetwork` to a saved bundle version, written only once parity holds.

The bundle is the same as a trained one: a `DropoutMLP` with its config, a `Standardizer` (the
graph's standardisation prefix, or the identity), the ONNX graph `export_onnx` writes and checks,
tau and calibration metrics from `--calibrate` rows through the evaluation training uses.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from service.bundle import Manifest, save_bundle
from service.bundle.manifest import Architecture
from service.errors import ModelImportError
from service.export import export_onnx
from service.importers.metadata import (
    Calibration,
    Metadata,
    calibration_data,
    resolve_metadata,
)
from service.importers.network import ImportedNetwork, Reference, dropout_rates
from service.importers.options import ImportOptions
from service.importers.parity import check_parity
from service.model import DropoutMLP, MLPConfig, Standardizer
from service.training.evaluation import (
    Evaluation,
    evaluate_classification,
    evaluate_regression,
)
from service.training.provenance import library_versions, onnx_fields

__all__ = ["IMPORTER_VERSION", "SourceFile", "build_network", "import_bundle"]

logger = logging.getLogger(__name__)

# Bumped whenever the reading rules change, so a bundle says which rules made it.
IMPORTER_VERSION = 1
PARITY_ROWS = 256
EXAMPLE_ROWS = 8


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """The original file, as the manifest records it and as parity runs it.

    `reference(keeps)` runs the original; `keeps` is None for the inverted style, else the keep
    probability in front of each affine layer, by which the classic style scales its inputs.
    """

    format: Literal["onnx", "torch"]
    name: str
    sha256: str
    producer: str
    reference: Callable[[list[float] | None], Reference]


def build_network(network: ImportedNetwork, config: MLPConfig) -> tuple[DropoutMLP, Standardizer]:
    """The `DropoutMLP` over standardised features and its `Standardizer`.

    The prefix x * scale + shift is a z-score with mean -shift / scale and std 1 / |scale|; a
    negative scale flips the sign of the first layer's columns instead.
    """
    scale, shift = network.input_scale, network.input_shift
    if np.any(scale == 0.0):
        raise ModelImportError("the standardisation prefix multiplies a feature by zero")
    first = network.weights[0] * np.sign(scale)[None, :]
    weights = [first, *network.weights[1:]]
    mlp = DropoutMLP(config)
    with torch.no_grad():
        for linear, weight, bias in zip(mlp.linears, weights, network.biases, strict=True):
            linear.weight.copy_(torch.as_tensor(weight))
            linear.bias.copy_(torch.as_tensor(bias))
    mlp.eval()
    n_out = config.n_outputs
    regression = config.task == "regression"
    standardizer = Standardizer(
        tuple(float(v) for v in -shift / scale),
        tuple(float(v) for v in 1.0 / np.abs(scale)),
        (0.0,) * n_out if regression else None,
        (1.0,) * n_out if regression else None,
    )
    return mlp, standardizer


def _random_rows(standardizer: Standardizer, seed: int) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    mean = np.asarray(standardizer.feature_mean)
    std = np.asarray(standardizer.feature_std)
    rows: npt.NDArray[np.float64] = mean + std * rng.uniform(-3.0, 3.0, (PARITY_ROWS, len(mean)))
    return rows


def _evaluate(
    options: ImportOptions,
    meta: Metadata,
    mlp: DropoutMLP,
    standardizer: Standardizer,
    calibration: Calibration | None,
) -> Evaluation:
    if calibration is None:
        if meta.task == "classification":
            return Evaluation(metrics={})
        if options.tau is None:
            raise ModelImportError(
                "a regression bundle needs tau, the observation noise precision, for its "
                "predictive intervals: pass --calibrate data.csv (with --target COL) to fit it "
                "on labelled rows as training does, or set it with --tau"
            )
        n_out = len(meta.targets)
        tau = list(options.tau) * n_out if len(options.tau) == 1 else list(options.tau)
        if len(tau) != n_out:
            raise ModelImportError(f"--tau gives {len(options.tau)} values for {n_out} outputs")
        return Evaluation(metrics={}, tau=tau)
    data, targets = calibration
    passes, seed = options.mc_samples, options.seed
    if meta.task == "classification":
        labels = np.asarray(targets, dtype=np.int64)
        return evaluate_classification(
            mlp, standardizer, data.features, labels, passes=passes, seed=seed, prefix="calibration"
        )
    values = np.asarray(targets, dtype=np.float64)
    return evaluate_regression(
        mlp, standardizer, data.features, values, passes=passes, seed=seed, prefix="calibration"
    )


def import_bundle(network: ImportedNetwork, source: SourceFile, options: ImportOptions) -> Manifest:
    """Check, convert and save an imported network as the next version of `options.name`.

    Returns:
        The saved manifest.

    Raises:
        ModelImportError: missing metadata, dropout rates or tau, or no parity with the original.
        DataError: the calibration CSV cannot be used.
    """
    meta = resolve_metadata(network, options)
    input_rate, hidden_rates = dropout_rates(network, options.dropout, options.input_dropout)
    config = MLPConfig(
        n_features=network.n_features,
        n_outputs=network.n_outputs,
        task=meta.task,
        hidden=network.hidden,
        dropout=hidden_rates,
        input_dropout=input_rate,
        style=options.style,
        activation=network.activation,
    )
    mlp, standardizer = build_network(network, config)
    calibration = calibration_data(options, meta)
    keeps = [1.0 - rate for rate in config.rates] if options.style == "classic" else None
    row_sets = [("random", _random_rows(standardizer, options.seed))]
    if calibration is not None:
        row_sets.append((calibration[0].file_name, calibration[0].features))
    # Calibration draws MC passes: only after the cheap checks, so a refusal comes fast.
    exported = export_onnx(mlp, standardizer, name=options.name, seed=options.seed)
    error, checked = check_parity(
        exported.onnx_bytes, network.head, source.reference(keeps), row_sets, source.name
    )
    evaluation = _evaluate(options, meta, mlp, standardizer, calibration)
    fields: dict[str, Any] = {
        "name": options.name,
        "task": meta.task,
        "description": options.description,
        "features": meta.features,
        "targets": meta.targets,
        "classes": meta.classes,
        "architecture": Architecture.of(config).model_dump(),
        "normalization": dataclasses.asdict(standardizer),
        "tau": evaluation.tau,
        "metrics": evaluation.metrics,
        "examples": None
        if calibration is None
        else [[float(v) for v in row] for row in calibration[0].features[:EXAMPLE_ROWS]],
        "imported": {
            "format": source.format,
            "source_file": source.name,
            "source_sha256": source.sha256,
            "importer_version": IMPORTER_VERSION,
            "producer": source.producer,
            "parity_max_error": error,
            "parity_rows": checked,
            "calibration_file": None if calibration is None else calibration[0].file_name,
            "calibration_sha256": None if calibration is None else calibration[0].sha256,
            "calibration_rows": None if calibration is None else calibration[0].rows,
            "tau_samples": 0 if calibration is None else options.mc_samples,
            "seed": options.seed,
        },
        "onnx": onnx_fields(exported),
        "library_versions": library_versions(),
    }
    manifest = save_bundle(options.models_dir, fields, mlp, exported.onnx_bytes)
    logger.info("imported %s as %s version %d", source.name, manifest.name, manifest.version)
    return manifest
