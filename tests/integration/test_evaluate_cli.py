"""`dropserve evaluate`, the calibration recorded at training time, and the shipped models' quality.

The shipped-model tests score models/concrete/1 and models/digits/1 on their validation rows:
rows that the seeded split of training held out from the weights (the weights were trained for a
fixed number of epochs, so no row of them chose an epoch either; tau, one number per output, was
fitted on them).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.bundle import load_bundle
from service.cli import main
from tests.integration.conftest import make_client
from tests.training_csv import classification_csv, regression_csv, write_csv

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAST_TRAIN = ["--hidden", "16", "--epochs", "15", "--patience", "0", "--tau-samples", "30"]


def evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["evaluate", *argv, "--format", "json", "--quiet"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def train(csv: Path, models: Path, name: str, *extra: str) -> Path:
    argv = ["train", "--data", str(csv), "--name", name, "--models-dir", str(models), "--quiet"]
    assert main([*argv, *FAST_TRAIN, *extra]) == 0
    return models / name / "1"


@pytest.fixture(scope="module")
def toy_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(data folder, regression bundle, classification bundle), trained in about a second."""
    folder = tmp_path_factory.mktemp("evaluate")
    regression = regression_csv(folder / "reg.csv")
    classification = classification_csv(folder / "cls.csv")
    models = folder / "models"
    reg = train(regression, models, "reg", "--target", "y")
    # A larger step than the default, so 15 short epochs separate the three classes.
    cls_argv = ["--target", "label", "--task", "classification", "--lr", "0.05"]
    cls = train(classification, models, "cls", *cls_argv)
    return folder, reg, cls


def test_training_records_validation_calibration(toy_models: tuple[Path, Path, Path]) -> None:
    _, reg, cls = toy_models
    metrics = load_bundle(reg).manifest.metrics
    for level in (50, 90, 95):
        assert 0.0 <= metrics[f"validation_coverage_{level}"] <= 1.0
    assert metrics["validation_coverage_50"] <= metrics["validation_coverage_95"]
    metrics = load_bundle(cls).manifest.metrics
    assert 0.0 <= metrics["validation_ece"] <= 1.0
    assert 0.0 <= metrics["validation_mc_ece"] <= 1.0


def test_regression_report_has_every_metric(
    toy_models: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, reg, _ = toy_models
    report = evaluate(
        capsys, "--bundle", str(reg), "--data", str(folder / "reg.csv"), "--samples", "50"
    )
    assert (report["task"], report["n_rows"], report["rows"]) == ("regression", 200, "all")
    names = {"rmse", "mc_rmse", "log_likelihood", "std_error_pearson", "std_error_spearman"}
    names |= {f"{kind}_{level}" for kind in ("coverage", "width") for level in (50, 90, 95)}
    assert set(report["metrics"]) == names
    assert all(math.isfinite(value) for value in report["metrics"].values())


def test_validation_rows_are_those_of_training(
    toy_models: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, reg, _ = toy_models
    argv = ["--bundle", str(reg), "--data", str(folder / "reg.csv"), "--samples", "30"]
    validation = evaluate(capsys, *argv, "--rows", "validation")
    train_rows = evaluate(capsys, *argv, "--rows", "train")
    manifest = load_bundle(reg).manifest
    assert validation["n_rows"] == manifest.training.rows_validation == 40
    assert train_rows["n_rows"] == manifest.training.rows_train
    # Training scored the same rows: the deterministic RMSE is the manifest's, bar float32.
    assert validation["metrics"]["rmse"] == pytest.approx(
        manifest.metrics["validation_rmse"], rel=1e-5
    )


def test_validation_rows_of_another_file_are_refused(
    toy_models: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, reg, _ = toy_models
    other = regression_csv(tmp_path / "other.csv", seed=7)
    argv = ["evaluate", "--bundle", str(reg), "--data", str(other), "--rows", "validation"]
    assert main([*argv, "--quiet"]) == 1
    assert "is not the file model 'reg' was trained on" in capsys.readouterr().err


def test_a_semicolon_separated_file_gets_a_delimiter_hint(
    toy_models: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, reg, _ = toy_models
    rows = [[0.1, 0.2, 0.3, 1.0], [0.4, 0.5, 0.6, 2.0]]
    csv = tmp_path / "semi.csv"
    csv.write_text("a;b;c;y\n" + "".join(";".join(map(str, row)) + "\n" for row in rows))
    assert main(["evaluate", "--bundle", str(reg), "--data", str(csv), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "semi.csv line 1: no column named 'y'; the header does not split on ','" in err
    assert "the file seems separated by ';': save it as comma-separated CSV" in err


def test_unknown_class_label_is_named(
    toy_models: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, _, cls = toy_models
    csv = write_csv(tmp_path / "odd.csv", ["u", "v", "label"], [[0.0, 0.0, "low"], [1, 1, "huge"]])
    assert main(["evaluate", "--bundle", str(cls), "--data", str(csv), "--quiet"]) == 1
    assert "label 'huge' is not a class of model 'cls'" in capsys.readouterr().err


def test_classification_report_and_plots_are_valid_png(
    toy_models: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder, _, cls = toy_models
    plots = tmp_path / "plots"
    argv = ["--bundle", str(cls), "--data", str(folder / "cls.csv"), "--samples", "40"]
    report = evaluate(capsys, *argv, "--plots", str(plots))
    metrics = report["metrics"]
    assert 0.9 < metrics["accuracy"] <= 1.0
    assert 0.0 <= metrics["mc_ece"] <= 1.0
    for name in ("nll", "brier", "ece", "mc_nll", "mc_brier", "auroc_entropy"):
        assert name in metrics
    written = sorted(path.name for path in plots.iterdir())
    assert written == ["error_vs_entropy.png", "reliability.png"]
    for path in plots.iterdir():
        assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_regression_plots_are_valid_png(
    toy_models: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from matplotlib.image import imread

    folder, reg, _ = toy_models
    argv = ["--bundle", str(reg), "--data", str(folder / "reg.csv"), "--samples", "30"]
    evaluate(capsys, *argv, "--plots", str(tmp_path))
    for name in ("coverage.png", "error_vs_std.png"):
        image = imread(tmp_path / name)
        assert image.ndim == 3
        assert min(image.shape[:2]) > 100


def test_plots_without_matplotlib_fail_with_a_clear_message(
    toy_models: tuple[Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    folder, reg, _ = toy_models
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without it looks like
    argv = ["evaluate", "--bundle", str(reg), "--data", str(folder / "reg.csv")]
    assert main([*argv, "--plots", str(tmp_path / "p"), "--quiet"]) == 2
    assert "--plots needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_table_format_names_each_metric(
    toy_models: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, reg, _ = toy_models
    argv = ["evaluate", "--bundle", str(reg), "--data", str(folder / "reg.csv"), "--samples", "20"]
    assert main([*argv, "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "reg v1 (regression) on reg.csv: 200 rows (all), T=20 passes" in table
    assert "share of targets inside the served 95 % interval" in table


def test_default_concrete_intervals_cover_their_level_on_held_out_rows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = str(REPO / "data" / "concrete.csv")
    report = evaluate(
        capsys, "--bundle", str(REPO / "models/concrete/1"), "--data", data, "--rows", "validation"
    )
    assert report["n_rows"] == 206
    assert 0.90 <= report["metrics"]["coverage_95"] <= 0.98


@pytest.fixture(scope="module")
def digits_report() -> dict[str, Any]:
    data = str(REPO / "data" / "digits.csv")
    argv = ["--bundle", str(REPO / "models/digits/1"), "--data", data, "--rows", "validation"]
    argv += ["--samples", "500"]
    out = io.StringIO()  # capsys is function-scoped; this fixture serves two tests
    with contextlib.redirect_stdout(out):
        assert main(["evaluate", *argv, "--format", "json", "--quiet"]) == 0
    report: dict[str, Any] = json.loads(out.getvalue())
    return report


def test_default_digits_entropy_flags_errors(digits_report: dict[str, Any]) -> None:
    assert digits_report["n_rows"] == 359
    assert digits_report["metrics"]["auroc_entropy"] > 0.8


def test_default_digits_mc_ece_is_no_worse_than_deterministic(
    digits_report: dict[str, Any],
) -> None:
    metrics = digits_report["metrics"]
    assert metrics["mc_ece"] <= metrics["ece"]


def test_model_detail_shows_the_validation_calibration() -> None:
    for client in make_client(REPO / "models"):
        assert isinstance(client, TestClient)
        concrete = client.get("/v1/models/concrete").json()["metrics"]
        assert 0.90 <= concrete["validation_coverage_95"] <= 0.98
        assert {"validation_coverage_50", "validation_coverage_90"} <= set(concrete)
        digits = client.get("/v1/models/digits").json()["metrics"]
        assert {"validation_ece", "validation_mc_ece"} <= set(digits)
