"""`dropserve predict --url`: a CSV scored by a server's model, the app in process, equal to
scoring the same bundle in process."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.cli import main
from service.cli import predict as predict_cli
from service.client import Client
from tests.integration.conftest import make_client
from tests.integration.test_predict_cli import CONCRETE, DIGITS, REPO, head

URL = "http://dropserve.test"


@pytest.fixture(scope="module")
def server() -> Iterator[TestClient]:
    yield from make_client(REPO / "models", batch_max_rows=1, max_samples=500)


@pytest.fixture(autouse=True)
def in_process_server(server: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def open_client(args: argparse.Namespace) -> Client:
        return Client(args.url, api_key=args.api_key, http=server)

    monkeypatch.setattr(predict_cli, "open_client", open_client)


def predict(*argv: str | Path) -> int:
    return main(["predict", *(str(a) for a in argv), "--quiet"])


def both_ways(bundle: Path, model: str, data: Path, tmp_path: Path, *options: str) -> list[str]:
    local, remote = tmp_path / "local.csv", tmp_path / "remote.csv"
    assert predict("--bundle", bundle, "--data", data, "--out", local, *options) == 0
    argv = ["--url", URL, "--model", model, "--data", data, "--out", remote, *options]
    assert predict(*argv) == 0
    return [local.read_text(), remote.read_text()]


@pytest.mark.parametrize("options", [(), ("--uncertainty", "--samples", "30", "--seed", "7")])
def test_regression_equals_in_process(tmp_path: Path, options: tuple[str, ...]) -> None:
    data = head(REPO / "data" / "concrete.csv", tmp_path / "new.csv", 9)
    # Three chunks: each chunk's seed (seed + its index) is the same in both modes.
    local, remote = both_ways(CONCRETE, "concrete", data, tmp_path, "--batch-rows", "4", *options)
    assert remote == local
    assert "strength_prediction" in local.splitlines()[0]


def test_classification_equals_in_process(tmp_path: Path) -> None:
    data = head(REPO / "data" / "digits.csv", tmp_path / "digits.csv", 5)
    options = ("--uncertainty", "--samples", "20", "--batch-rows", "2", "--seed", "3")
    local, remote = both_ways(DIGITS, "digits", data, tmp_path, *options)
    assert remote == local
    assert "mutual_information" in local.splitlines()[0]


def test_cell_errors_are_those_of_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = head(REPO / "data" / "concrete.csv", tmp_path / "new.csv", 3)
    lines = data.read_text().splitlines()
    lines[2] = "abc" + lines[2][lines[2].index(",") :]
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scored.csv"
    assert predict("--bundle", CONCRETE, "--data", data, "--out", out) == 2
    local = capsys.readouterr().err
    assert predict("--url", URL, "--model", "concrete", "--data", data, "--out", out) == 2
    assert capsys.readouterr().err == local
    assert "line 3" in local
    assert "'abc'" in local
    assert not out.exists()


def test_server_refusals_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = head(REPO / "data" / "concrete.csv", tmp_path / "new.csv", 3)
    out = tmp_path / "scored.csv"
    assert predict("--url", URL, "--model", "nope", "--data", data, "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dropserve predict: error: the server at {URL} refused: ")
    assert "nope" in err
    assert "HTTP 404" in err
    argv = ["--url", URL, "--model", "concrete", "--data", data, "--out", out, "--uncertainty"]
    assert predict(*argv, "--samples", "501") == 2
    err = capsys.readouterr().err
    assert "samples must be between 1 and 500, got 501" in err
    assert "HTTP 422" in err
    assert not out.exists()


def test_flag_combinations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = head(REPO / "data" / "concrete.csv", tmp_path / "new.csv", 3)
    out = tmp_path / "scored.csv"
    files = ["--data", data, "--out", out]
    assert predict("--url", URL, *files) == 2
    assert "needs --model NAME" in capsys.readouterr().err
    assert predict("--bundle", CONCRETE, "--model", "concrete", *files) == 2
    assert "--model concrete names a served model and needs --url" in capsys.readouterr().err
    assert predict("--url", URL, "--model", "concrete", "--device", "cpu", *files) == 2
    assert "--device cpu applies to scoring in process" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        predict("--bundle", CONCRETE, "--url", URL, *files)
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_no_server_is_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the real client, to a port where nothing listens
    data = head(REPO / "data" / "concrete.csv", tmp_path / "new.csv", 3)
    argv = ["--url", "http://127.0.0.1:9", "--model", "concrete", "--timeout", "5"]
    assert predict(*argv, "--data", data, "--out", tmp_path / "scored.csv") == 1
    err = capsys.readouterr().err
    assert "cannot reach http://127.0.0.1:9/v1/models/concrete" in err
