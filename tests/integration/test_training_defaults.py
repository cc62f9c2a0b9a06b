"""The default bundles committed under models/ load, verify and describe what they were built on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from service.bundle import Bundle, load_bundle
from service.training import load_csv
from service.training.pipeline import training_split

REPO = Path(__file__).resolve().parents[2]
CONCRETE_FEATURES = [
    "cement",
    "slag",
    "fly_ash",
    "water",
    "superplasticizer",
    "coarse_aggregate",
    "fine_aggregate",
    "age",
]


def bundle(name: str) -> Bundle:
    return load_bundle(REPO / "models" / name / "1")


def test_concrete_is_a_decent_regression_model() -> None:
    manifest = bundle("concrete").manifest
    assert manifest.task == "regression"
    assert manifest.features == CONCRETE_FEATURES
    assert manifest.targets == ["strength"]
    assert manifest.architecture.style == "inverted"
    assert manifest.architecture.input_dropout > 0
    assert manifest.tau is not None
    assert manifest.tau[0] > 0
    assert 3.0 < manifest.metrics["validation_rmse"] < 7.0  # MPa
    assert manifest.onnx.parity_max_error <= manifest.onnx.parity_tolerance


def test_digits_is_an_accurate_ten_class_model() -> None:
    manifest = bundle("digits").manifest
    assert manifest.task == "classification"
    assert manifest.features == [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    assert manifest.classes == [str(digit) for digit in range(10)]
    assert manifest.architecture.style == "classic"
    assert manifest.metrics["validation_accuracy"] > 0.95
    assert manifest.onnx.parity_max_error <= manifest.onnx.parity_tolerance


@pytest.mark.parametrize("name", ["concrete", "digits"])
def test_default_bundle_records_the_shipped_data_file(name: str) -> None:
    manifest = bundle(name).manifest
    data = REPO / "data" / manifest.training.data_file
    assert manifest.training.data_file == f"{name}.csv"
    assert hashlib.sha256(data.read_bytes()).hexdigest() == manifest.training.data_sha256
    size = sum(f.stat().st_size for f in (REPO / "models" / name / "1").iterdir())
    assert size < 200_000, "default bundles are committed: keep them small"


@pytest.mark.parametrize("name", ["concrete", "digits"])
def test_default_bundle_examples_are_its_held_out_rows(name: str) -> None:
    manifest = bundle(name).manifest
    training = manifest.training
    data = load_csv(
        REPO / "data" / training.data_file, manifest.targets, manifest.features, manifest.task
    )
    assert training.validation_fraction is not None
    _, validation = training_split(data.rows, training.validation_fraction, training.seed)
    assert manifest.examples == data.features[validation[: len(manifest.examples or [])]].tolist()
    assert 1 <= len(manifest.examples or []) <= 16
