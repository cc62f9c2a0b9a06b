"""Tiny random dropout networks and saved bundles for tests.

Everything here is seeded and takes well under a second: a network is built with its own RNG
state (the global torch seed is left alone), exported to ONNX with the parity check, and saved
with `save_bundle` exactly as the training command would save it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from service.bundle import save_bundle
from service.bundle.manifest import Architecture
from service.export import ExportResult, export_onnx
from service.model import DropoutMLP, MLPConfig, Standardizer
from service.model.mlp import Activation, DropoutStyle, Task
from service.training.provenance import library_versions, onnx_fields

__all__ = [
    "CLASSES",
    "edit_manifest",
    "make_bundle",
    "make_config",
    "make_model",
    "make_network",
    "make_standardizer",
    "manifest_fields",
    "raw_features",
]

CLASSES = ("setosa", "versicolor", "virginica")
DEFAULT_FEATURES = 3


def make_config(
    *,
    task: Task = "regression",
    style: DropoutStyle = "inverted",
    hidden: tuple[int, ...] = (16,),
    dropout: tuple[float, ...] = (0.1,),
    input_dropout: float = 0.0,
    activation: Activation = "relu",
    n_features: int = DEFAULT_FEATURES,
    n_outputs: int | None = None,
) -> MLPConfig:
    """An MLPConfig; `n_outputs` defaults to 1 target (regression) or len(CLASSES) classes."""
    if n_outputs is None:
        n_outputs = 1 if task == "regression" else len(CLASSES)
    return MLPConfig(
        n_features=n_features,
        n_outputs=n_outputs,
        task=task,
        hidden=hidden,
        dropout=dropout,
        input_dropout=input_dropout,
        style=style,
        activation=activation,
    )


def make_network(config: MLPConfig, seed: int = 0) -> DropoutMLP:
    """A randomly initialised network in eval mode; the global torch RNG is not disturbed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = DropoutMLP(config)
    return network.eval()


def make_standardizer(config: MLPConfig, seed: int = 0) -> Standardizer:
    """Non-trivial statistics (means far from 0, stds far from 1) so that folding is exercised."""
    rng = np.random.default_rng(seed + 1000)
    n_in = config.n_features
    feature_mean = tuple(float(v) for v in rng.uniform(-5.0, 5.0, n_in))
    feature_std = tuple(float(v) for v in rng.uniform(0.5, 3.0, n_in))
    if config.task == "classification":
        return Standardizer(feature_mean, feature_std)
    n_out = config.n_outputs
    target_mean = tuple(float(v) for v in rng.uniform(5.0, 20.0, n_out))
    target_std = tuple(float(v) for v in rng.uniform(2.0, 6.0, n_out))
    return Standardizer(feature_mean, feature_std, target_mean, target_std)


def make_model(seed: int = 0, **config_kwargs: Any) -> tuple[DropoutMLP, Standardizer]:
    """A network and its standardizer; keyword arguments go to `make_config`."""
    config = make_config(**config_kwargs)
    return make_network(config, seed), make_standardizer(config, seed)


def raw_features(standardizer: Standardizer, rows: int, seed: int = 0) -> npt.NDArray[np.float64]:
    """Raw (unstandardised) feature rows drawn around the training distribution."""
    rng = np.random.default_rng(seed)
    mean = np.asarray(standardizer.feature_mean)
    std = np.asarray(standardizer.feature_std)
    return mean + std * rng.normal(size=(rows, mean.size))


def manifest_fields(
    name: str, network: DropoutMLP, standardizer: Standardizer, export: ExportResult
) -> dict[str, Any]:
    """Every manifest field except `version`, `files` and `created_at` (decided by save_bundle)."""
    config = network.config
    regression = config.task == "regression"
    norm = standardizer  # short name for the normalization block below
    return {
        "name": name,
        "task": config.task,
        "description": f"{name}: a tiny random network for tests",
        "features": [f"x{i}" for i in range(config.n_features)],
        "targets": [f"y{i}" for i in range(config.n_outputs)] if regression else ["species"],
        "classes": None if regression else list(CLASSES[: config.n_outputs]),
        "architecture": Architecture.of(config).model_dump(),
        "normalization": dataclasses.asdict(norm),
        "tau": [4.0] * config.n_outputs if regression else None,
        "metrics": {"rmse": 0.5} if regression else {"accuracy": 0.9},
        "training": {
            "data_file": f"{name}.csv",
            "data_sha256": "0" * 64,
            "rows_train": 90,
            "rows_validation": 10,
            "epochs": 1,
            "batch_size": 32,
            "learning_rate": 1e-3,
            "weight_decay": 0.0,
            "seed": 0,
        },
        "onnx": onnx_fields(export),
        "library_versions": library_versions(),
    }


def make_bundle(
    models_dir: Path,
    name: str = "toy",
    task: Task = "regression",
    style: DropoutStyle = "inverted",
    hidden: tuple[int, ...] = (16,),
    dropout: tuple[float, ...] = (0.1,),
    input_dropout: float = 0.0,
    seed: int = 0,
    *,
    activation: Activation = "relu",
    n_features: int = DEFAULT_FEATURES,
    n_outputs: int | None = None,
) -> Path:
    """Build, export (with the parity check) and save a new bundle version; returns its folder."""
    network, standardizer = make_model(
        seed,
        task=task,
        style=style,
        hidden=hidden,
        dropout=dropout,
        input_dropout=input_dropout,
        activation=activation,
        n_features=n_features,
        n_outputs=n_outputs,
    )
    export = export_onnx(network, standardizer, name=name, seed=seed)
    fields = manifest_fields(name, network, standardizer, export)
    manifest = save_bundle(models_dir, fields, network, export.onnx_bytes)
    return models_dir / manifest.name / str(manifest.version)


def edit_manifest(
    bundle: Path, change: Callable[[dict[str, Any]], None], *, resign: bool = False
) -> None:
    """Change a bundle's manifest.json in place, as someone with write access to it could.

    With `resign`, a manifest that carries a digest gets the digest of its new content (what a
    tamperer who knows the format writes); without, the digest is left stale.
    """
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    if resign and "digest" in data:
        from service.bundle.digest import compute_digest  # late: older code has none

        data["digest"] = compute_digest(data)
    path.write_text(json.dumps(data, indent=2))
