"""The HTTP edge over fake engines (service.engines.fake): both protocols answer the closed
forms the fakes compute, so what is tested is the edge and the data plane, not a network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from service.engines.fake import fake_engines
from tests.integration.conftest import wait_ready

ROWS = [[1.0, 2.0, 6.0], [-4.0, 0.5, 1.0]]


@pytest.fixture(scope="module")
def fake_client(toy_models_dir: Path) -> Iterator[TestClient]:
    settings = Settings(models_dir=toy_models_dir, warmup_rounds=1)
    app = create_app(settings, engines=fake_engines)
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


def _fake_draws(rows: list[list[float]], outputs: int, samples: int, seed: int) -> torch.Tensor:
    """The fake's passes, written out: the row mean plus seeded standard normal noise."""
    means = torch.tensor(rows, dtype=torch.float64).mean(dim=1, keepdim=True)
    noise = torch.randn(
        (samples, len(rows), outputs),
        generator=torch.Generator().manual_seed(seed),
        dtype=torch.float64,
    )
    return (means.expand(-1, outputs) + noise).float()


def test_predict_answers_the_fake_closed_form(fake_client: TestClient) -> None:
    answer = fake_client.post("/v1/models/toyreg/versions/2/predict", json={"instances": ROWS})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [[3.0, 3.0], [-0.8333333333333334, -0.8333333333333334]]


def test_classification_predict_is_the_softmax_of_the_row_mean(fake_client: TestClient) -> None:
    answer = fake_client.post("/v1/models/toycls/predict", json={"instances": ROWS[:1]})
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    expected = torch.softmax(torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64), dim=0)
    assert prediction["probabilities"] == pytest.approx(expected.tolist(), rel=1e-12)


def test_seeded_uncertainty_summarises_exactly_the_fake_draws(fake_client: TestClient) -> None:
    body = {"instances": ROWS, "samples": 50, "seed": 11, "return_samples": True}
    answer = fake_client.post("/v1/models/toyreg/versions/2/uncertainty", json=body)
    assert answer.status_code == 200, answer.text
    draws = _fake_draws(ROWS, outputs=2, samples=50, seed=11).double()
    for row, prediction in enumerate(answer.json()["predictions"]):
        assert prediction["mean"] == pytest.approx(draws[:, row].mean(dim=0).tolist(), rel=1e-12)
        expected_epistemic = draws[:, row].var(dim=0, correction=0).tolist()
        assert prediction["epistemic_variance"] == pytest.approx(expected_epistemic, rel=1e-9)
        assert prediction["samples"] == draws[:, row].tolist()


def test_open_inference_protocol_answers_the_same_fake(fake_client: TestClient) -> None:
    body = {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 3], "data": ROWS}],
        "parameters": {"mode": "uncertainty", "samples": 20, "seed": 3},
    }
    answer = fake_client.post("/v2/models/toyreg/versions/2/infer", json=body)
    assert answer.status_code == 200, answer.text
    outputs = {output["name"]: output for output in answer.json()["outputs"]}
    draws = _fake_draws(ROWS, outputs=2, samples=20, seed=3).double()
    expected = draws.mean(dim=0).numpy().astype(np.float32).ravel().tolist()
    assert outputs["mean"]["data"] == expected
