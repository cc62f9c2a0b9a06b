"""`dropserve predict`: a CSV of new rows scored in process with the shipped bundles."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.batch.reader import RowReader
from service.cli import main
from service.device import resolve_torch_device
from service.evaluation.run import load_model
from tests.integration.conftest import make_client

REPO = Path(__file__).resolve().parents[2]
CONCRETE = REPO / "models" / "concrete" / "1"
DIGITS = REPO / "models" / "digits" / "1"
FEATURES = ["cement", "slag", "fly_ash", "water", "superplasticizer", "coarse_aggregate"]
FEATURES += ["fine_aggregate", "age"]


def head(source: Path, target: Path, rows: int, delimiter: str = ",") -> Path:
    """The header and first `rows` data rows of `source`, written with `delimiter`."""
    with source.open(newline="") as file:
        kept = [row for _, row in zip(range(rows + 1), csv.reader(file), strict=False)]
    with target.open("w", newline="") as file:
        csv.writer(file, delimiter=delimiter).writerows(kept)
    return target


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def predict(*argv: str | Path) -> int:
    return main(["predict", *(str(a) for a in argv), "--quiet"])


@pytest.fixture(scope="module")
def concrete_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return head(REPO / "data" / "concrete.csv", tmp_path_factory.mktemp("predict") / "new.csv", 9)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from make_client(REPO / "models", batch_max_rows=1)


def test_regression_keeps_the_columns_and_equals_the_server(
    concrete_csv: Path, tmp_path: Path, server: TestClient
) -> None:
    out = tmp_path / "scored.csv"
    argv = ["--bundle", CONCRETE, "--data", concrete_csv, "--out", out]
    assert (
        predict(*argv, "--uncertainty", "--samples", "50", "--seed", "7", "--batch-rows", "9") == 0
    )
    scored = read(out)
    original = read(concrete_csv)
    assert len(scored) == 9
    stats = ["mean", "std", "lower", "upper", "epistemic_variance", "aleatoric_variance"]
    assert list(scored[0]) == [
        *original[0],
        "strength_prediction",
        *(f"strength_{s}" for s in stats),
    ]
    for row, before in zip(scored, original, strict=True):
        assert {key: row[key] for key in before} == before  # input cells kept as written
    rows = [[float(row[name]) for name in FEATURES] for row in original]
    served = server.post("/v1/models/concrete/predict", json={"instances": rows}).json()
    mc = server.post(
        "/v1/models/concrete/uncertainty", json={"instances": rows, "samples": 50, "seed": 7}
    ).json()
    for row, value, summary in zip(scored, served["predictions"], mc["predictions"], strict=True):
        assert float(row["strength_prediction"]) == pytest.approx(value[0], rel=1e-6)
        for stat in stats:
            assert float(row[f"strength_{stat}"]) == pytest.approx(summary[stat][0], rel=1e-6)


def test_chunks_replay_with_the_seed(concrete_csv: Path, tmp_path: Path) -> None:
    argv = ["--bundle", CONCRETE, "--data", concrete_csv, "--uncertainty", "--samples", "20"]
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    assert predict(*argv, "--out", first, "--batch-rows", "4") == 0
    assert predict(*argv, "--out", second, "--batch-rows", "4") == 0
    assert first.read_text() == second.read_text()


def test_classification_columns(tmp_path: Path) -> None:
    data = head(REPO / "data" / "digits.csv", tmp_path / "digits.csv", 5)
    out = tmp_path / "scored.csv"
    assert predict("--bundle", DIGITS, "--data", data, "--out", out, "--uncertainty") == 0
    scored = read(out)
    assert [row["label"] for row in scored] == [row["digit"] for row in read(data)]
    for row in scored:
        assert sum(float(row[f"probability_{k}"]) for k in range(10)) == pytest.approx(1.0)
        assert 0.0 <= float(row["mutual_information"]) <= float(row["predictive_entropy"])
        assert float(row["predictive_entropy"]) <= math.log(10)
        assert row["mc_label"] in {str(k) for k in range(10)}


def test_the_reader_holds_one_chunk(concrete_csv: Path) -> None:
    reader = RowReader(concrete_csv, FEATURES)
    sizes = [chunk.features.shape for chunk in reader.chunks(4)]
    reader.close()
    assert sizes == [(4, 8), (4, 8), (1, 8)]


def test_deterministic_equals_the_engine(concrete_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "scored.csv"
    assert predict("--bundle", CONCRETE, "--data", concrete_csv, "--out", out) == 0
    model = load_model(CONCRETE, resolve_torch_device("cpu"), 1 << 20)
    rows = np.array([[float(row[name]) for name in FEATURES] for row in read(concrete_csv)])
    expected = model.deterministic.predict(rows)[:, 0]
    got = [float(row["strength_prediction"]) for row in read(out)]
    np.testing.assert_allclose(got, expected, rtol=1e-7)


def refused(capsys: pytest.CaptureFixture[str], data: Path, out: Path, *extra: str) -> str:
    assert predict("--bundle", CONCRETE, "--data", data, "--out", out, *extra) == 2
    assert not out.exists()
    assert not list(out.parent.glob(".*.partial"))
    return capsys.readouterr().err


def test_usage_errors(
    concrete_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scored.csv"
    text = concrete_csv.read_text()
    no_age = tmp_path / "no_age.csv"
    no_age.write_text(text.replace(",age,", ",days,", 1))
    assert "no column named 'age'" in refused(capsys, no_age, out)
    lines = text.splitlines()
    cells = lines[4].split(",")
    cells[3] = "forty"
    lines[4] = ",".join(cells)
    bad_cell = tmp_path / "bad_cell.csv"
    bad_cell.write_text("\n".join(lines) + "\n")
    assert "bad_cell.csv line 5, column 'water': 'forty' is not a number" in refused(
        capsys, bad_cell, out
    )
    semicolons = head(concrete_csv, tmp_path / "semi.csv", 3, delimiter=";")
    assert "pass --delimiter ';'" in refused(capsys, semicolons, out)
    assert "samples must be at least 1" in refused(capsys, concrete_csv, out, "--samples", "0")
    assert (
        predict("--bundle", CONCRETE, "--data", semicolons, "--out", out, "--delimiter", ";") == 0
    )
    assert len(out.read_text().splitlines()) == 4
