"""The benchmark models as real bundles (random weights): small 8-50-1 and large 64-3x512-10."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from service.bundle import Bundle, load_bundle, save_bundle
from service.bundle.manifest import Architecture
from service.export import export_onnx
from service.model import DropoutMLP, MLPConfig, Standardizer
from service.training.provenance import library_versions, onnx_fields

__all__ = ["BENCH_MODELS", "BenchModel", "write_bundle"]


@dataclass(frozen=True)
class BenchModel:
    name: str
    config: MLPConfig


BENCH_MODELS = {
    "small": BenchModel("small", MLPConfig(8, 1, hidden=(50,), dropout=(0.05,))),
    "small-input": BenchModel(
        "small-input", MLPConfig(8, 1, hidden=(50,), dropout=(0.05,), input_dropout=0.05)
    ),
    "large": BenchModel(
        "large",
        MLPConfig(64, 10, task="classification", hidden=(512, 512, 512), dropout=(0.1, 0.1, 0.1)),
    ),
}


def write_bundle(models_dir: Path, model: BenchModel, seed: int = 0) -> Bundle:
    """Save `model` with seeded random weights as a verified bundle and load it back."""
    config = model.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = DropoutMLP(config).eval()
    regression = config.task == "regression"
    scaler = Standardizer(
        (0.0,) * config.n_features,
        (1.0,) * config.n_features,
        (0.0,) * config.n_outputs if regression else None,
        (1.0,) * config.n_outputs if regression else None,
    )
    export = export_onnx(network, scaler, name=model.name, seed=seed)
    fields = {
        "name": model.name,
        "task": config.task,
        "description": f"benchmark model {model.name} (random weights)",
        "features": [f"x{i}" for i in range(config.n_features)],
        "targets": [f"y{i}" for i in range(config.n_outputs)] if regression else ["label"],
        "classes": None if regression else [str(i) for i in range(config.n_outputs)],
        "architecture": Architecture.of(config).model_dump(),
        "normalization": dataclasses.asdict(scaler),
        "tau": [1.0] * config.n_outputs if regression else None,
        "training": {
            "data_file": "random",
            "data_sha256": "0" * 64,
            "rows_train": 1,
            "rows_validation": 0,
            "epochs": 0,
            "batch_size": 1,
            "learning_rate": 1e-3,
            "weight_decay": 0.0,
            "seed": seed,
        },
        "onnx": onnx_fields(export),
        "library_versions": library_versions(),
    }
    manifest = save_bundle(models_dir, fields, network, export.onnx_bytes)
    return load_bundle(models_dir / manifest.name / str(manifest.version))
