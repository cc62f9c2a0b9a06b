"""`dropserve train` and `dropserve export` end to end on tiny synthetic CSVs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from service.bundle import MANIFEST_FILE, ONNX_FILE, WEIGHTS_FILE, load_bundle
from service.cli import main
from service.errors import DataError
from service.training.options import TrainOptions
from service.training.pipeline import train_bundle
from tests.training_csv import classification_csv, regression_csv, write_csv

FAST = ["--hidden", "16", "--epochs", "15", "--patience", "0", "--tau-samples", "30", "--quiet"]


def train_cli(csv: Path, models: Path, *extra: str, name: str = "toy", target: str = "y") -> int:
    argv = ["train", "--data", str(csv), "--target", target, "--name", name]
    return main([*argv, "--models-dir", str(models), *FAST, *extra])


def options(csv: Path, models: Path, **overrides: object) -> TrainOptions:
    fields: dict[str, object] = {
        "data": csv,
        "targets": ("y",),
        "name": "toy",
        "models_dir": models,
        "hidden": (16,),
        "epochs": 15,
        "patience": 0,
        "mc_samples": 30,
        "progress": False,
    }
    return TrainOptions(**{**fields, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cell", "column", "detail"),
    [
        ("", "b", "missing value"),
        ("NaN", "b", "missing value"),
        ("x1", "c", "'x1' is not a number"),
    ],
)
def test_bad_cell_fails_before_training(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cell: str,
    column: str,
    detail: str,
) -> None:
    rows: list[list[object]] = [[0.1 * i, 1.0, 2.0, 3.0] for i in range(20)]
    rows[13][["a", "b", "c"].index(column)] = cell
    csv = write_csv(tmp_path / "bad.csv", ["a", "b", "c", "y"], rows)
    monkeypatch.setattr("service.training.pipeline.fit", _must_not_train)
    assert train_cli(csv, tmp_path / "models") == 1
    # Row index 13 is data row 14, i.e. line 15 of the file (the header is line 1).
    err = capsys.readouterr().err
    assert f"bad.csv line 15, column {column!r}: " in err
    assert detail in err
    assert not (tmp_path / "models").exists()


def _must_not_train(*args: object, **kwargs: object) -> None:
    raise AssertionError("training started although the data are bad")


def test_a_semicolon_separated_file_gets_a_delimiter_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [[0.1 * i, 1.0, 2.0, 3.0] for i in range(20)]
    csv = tmp_path / "semi.csv"
    csv.write_text("a;b;c;y\n" + "".join(";".join(map(str, row)) + "\n" for row in rows))
    monkeypatch.setattr("service.training.pipeline.fit", _must_not_train)
    assert train_cli(csv, tmp_path / "models") == 1
    err = capsys.readouterr().err
    assert "semi.csv line 1: no column named 'y'; the header does not split on ','" in err
    assert "seems separated by ';': save it as comma-separated CSV" in err


def test_a_comma_file_without_the_column_lists_the_header(tmp_path: Path) -> None:
    csv = regression_csv(tmp_path / "d.csv", rows=20)
    with pytest.raises(DataError, match=r"no column named 'price'; the header has a, b, c, y$"):
        train_bundle(options(csv, tmp_path / "models", targets=("price",)))


def test_unknown_target_fails_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = regression_csv(tmp_path / "d.csv", rows=20)
    monkeypatch.setattr("service.training.pipeline.fit", _must_not_train)
    with pytest.raises(DataError, match="no column named 'strength'"):
        train_bundle(options(csv, tmp_path / "models", targets=("strength",)))
    assert not (tmp_path / "models").exists()


def test_cli_trains_version_1_then_2_and_the_bundle_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = regression_csv(tmp_path / "d.csv")
    models = tmp_path / "models"
    assert train_cli(csv, models, "--description", "toy regression") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == str(models / "toy" / "1")
    # Where it answers, under the default host, port and watching interval.
    assert out.splitlines()[1] == (
        f"  serving at http://127.0.0.1:8000/v1/models/toy/versions/1 by a server on {models}; "
        "a running server picks it up within 2 s (DROPSERVE_WATCH_S)"
    )
    assert "validation_rmse" in out
    assert train_cli(csv, models) == 0
    assert sorted(p.name for p in (models / "toy").iterdir()) == ["1", "2"]

    bundle = load_bundle(models / "toy" / "1")
    manifest = bundle.manifest
    assert manifest.features == ["a", "b", "c"]
    assert manifest.targets == ["y"]
    assert manifest.description == "toy regression"
    assert manifest.onnx.parity_max_error <= manifest.onnx.parity_tolerance
    assert manifest.tau is not None
    assert len(manifest.tau) == 1
    assert manifest.tau[0] > 0
    assert set(manifest.metrics) == {
        "train_loss",
        "validation_rmse",
        "validation_mc_rmse",
        "validation_nll",
        "validation_coverage_50",
        "validation_coverage_90",
        "validation_coverage_95",
    }
    training = manifest.training
    assert (training.rows_train, training.rows_validation) == (160, 40)
    assert manifest.examples is not None  # held-out rows for clients to try, raw units
    assert len(manifest.examples) == 8
    assert all(len(row) == 3 for row in manifest.examples)
    assert training.data_file == "d.csv"
    assert training.epochs == 15
    assert training.tau_samples == 30
    libraries = {"torch", "onnx", "onnxruntime", "numpy", "dropserve", "python"}
    assert set(manifest.library_versions) == libraries


def test_same_seed_gives_identical_weight_bytes_other_seed_does_not(tmp_path: Path) -> None:
    csv = regression_csv(tmp_path / "d.csv")
    models = tmp_path / "models"
    for seed in ("7", "7", "8"):
        assert train_cli(csv, models, "--seed", seed, "--input-dropout", "0.1") == 0
    first, again, other = ((models / "toy" / v / WEIGHTS_FILE).read_bytes() for v in "123")
    assert first == again
    assert first != other
    onnx = [(models / "toy" / v / ONNX_FILE).read_bytes() for v in "12"]
    assert onnx[0] == onnx[1]


def test_fitted_tau_matches_the_noise_of_the_data(tmp_path: Path) -> None:
    sigma = 0.5
    csv = regression_csv(tmp_path / "d.csv", rows=1000, noise=sigma, seed=4)
    run = options(
        csv,
        tmp_path / "models",
        hidden=(32,),
        epochs=60,
        learning_rate=3e-3,
        mc_samples=100,
        validation_fraction=0.3,
    )
    manifest = train_bundle(run)
    assert manifest.tau is not None
    # 300 validation rows leave ~8 % sampling error in a variance, and the short training adds
    # model error: seeds 4-6 x 2 land within 10 %; the bound leaves room for other BLAS builds.
    assert 1.0 / manifest.tau[0] == pytest.approx(sigma**2, rel=0.25)
    assert manifest.metrics["validation_rmse"] == pytest.approx(sigma, rel=0.3)


def test_prior_weight_decay_is_recorded_per_layer(tmp_path: Path) -> None:
    csv = regression_csv(tmp_path / "d.csv")
    prior = {"prior_length_scale": 0.5, "prior_tau": 2.0}
    run = options(csv, tmp_path / "models", input_dropout=0.2, dropout=(0.1,), **prior)
    manifest = train_bundle(run)
    rows = manifest.training.rows_train
    expected = [0.25 * (1 - p) / (2 * rows * 2.0) for p in (0.2, 0.1)]
    assert manifest.training.weight_decay_per_layer == pytest.approx(expected)
    assert manifest.training.weight_decay == pytest.approx(max(expected))


def test_without_validation_rows_tau_is_fitted_on_training_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    csv = regression_csv(tmp_path / "d.csv", rows=60)
    caplog.set_level("INFO", logger="service.training")
    manifest = train_bundle(options(csv, tmp_path / "models", validation_fraction=0.0))
    assert manifest.training.rows_validation == 0
    assert manifest.tau is not None
    assert {"train_rmse", "train_mc_rmse", "train_nll"} <= set(manifest.metrics)
    assert not any(key.startswith("validation") for key in manifest.metrics)
    assert "fitted on the 60 training rows" in caplog.text
    assert manifest.examples is not None
    assert len(manifest.examples) == 8, "training rows stand in for the missing held-out rows"


def test_classification_stores_classes_and_accuracy(tmp_path: Path) -> None:
    csv = classification_csv(tmp_path / "c.csv")
    models = tmp_path / "models"
    argv = ["--task", "classification", "--dropout-style", "classic", "--lr", "1e-2"]
    assert train_cli(csv, models, *argv, name="cls", target="label") == 0
    bundle = load_bundle(models / "cls" / "1")
    manifest = bundle.manifest
    assert manifest.classes == ["high", "low", "mid"]
    assert manifest.tau is None
    assert manifest.normalization.target_mean is None
    assert manifest.architecture.style == "classic"
    metrics = manifest.metrics
    for key in ("validation_accuracy", "validation_mc_accuracy"):
        assert 0.9 <= metrics[key] <= 1.0, "three well separated clusters"
    assert metrics["validation_nll"] > 0
    assert metrics["validation_mc_nll"] > 0
    # Output columns follow `classes`: a row deep in the 'low' cluster predicts index 1.
    x = torch.as_tensor(manifest.standardizer().features(np.array([[-3.0, 0.0]])))
    assert int(bundle.network(x.float()).argmax()) == manifest.classes.index("low") == 1


def test_export_writes_a_new_version_with_the_same_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = regression_csv(tmp_path / "d.csv", rows=60)
    models = tmp_path / "models"
    assert train_cli(csv, models) == 0
    capsys.readouterr()
    assert main(["export", "--bundle", str(models / "toy" / "1")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == str(models / "toy" / "2")
    old, new = load_bundle(models / "toy" / "1"), load_bundle(models / "toy" / "2")
    assert (models / "toy/1" / WEIGHTS_FILE).read_bytes() == (
        models / "toy/2" / WEIGHTS_FILE
    ).read_bytes()
    assert new.manifest.tau == old.manifest.tau
    assert new.manifest.metrics == old.manifest.metrics
    assert new.manifest.training == old.manifest.training
    assert new.manifest.onnx.parity_max_error <= new.manifest.onnx.parity_tolerance
    raw = json.loads((models / "toy/2" / MANIFEST_FILE).read_text())
    assert raw["version"] == 2


def test_export_of_a_missing_bundle_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--bundle", str(tmp_path / "nope" / "1")]) == 1
    assert "cannot read the manifest" in capsys.readouterr().err


def test_bad_options_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = regression_csv(tmp_path / "d.csv", rows=20)
    assert train_cli(csv, tmp_path / "m", "--validation-fraction", "0", "--patience", "5") == 2
    assert "early stopping needs a validation split" in capsys.readouterr().err
    assert train_cli(csv, tmp_path / "m", name="Bad Name") == 2
    assert not (tmp_path / "m").exists()
