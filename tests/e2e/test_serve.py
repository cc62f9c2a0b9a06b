"""End to end: the committed default models served by a real process, queried over HTTP."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.e2e.conftest import MODELS_DIR, Server

CONCRETE_ROWS = [
    [540.0, 0.0, 0.0, 162.0, 2.5, 1040.0, 676.0, 28.0],
    [332.5, 142.5, 0.0, 228.0, 0.0, 932.0, 594.0, 270.0],
    [198.6, 132.4, 0.0, 192.0, 0.0, 978.4, 825.5, 90.0],
]


def latest_bundle(name: str) -> tuple[int, dict[str, object]]:
    version = max(int(p.name) for p in (MODELS_DIR / name).iterdir() if p.name.isdigit())
    manifest = json.loads((MODELS_DIR / name / str(version) / "manifest.json").read_text())
    return version, manifest


def run_onnx(name: str, rows: list[list[float]], output: str) -> np.ndarray:
    version, _ = latest_bundle(name)
    session = ort.InferenceSession(
        str(MODELS_DIR / name / str(version) / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (out,) = session.run([output], {"features": np.asarray(rows, dtype=np.float32)})
    return np.asarray(out)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120.0) as client:
        yield client


def test_readiness_went_from_503_to_200(server: Server) -> None:
    statuses = server.readiness
    assert statuses[-1] == 200
    assert 503 in statuses, f"never saw the loading state: {statuses}"
    assert set(statuses[:-1]) == {503}


def test_default_models_are_listed(client: httpx.Client) -> None:
    names = {m["name"]: m["task"] for m in client.get("/v1/models").json()["models"]}
    assert names == {"concrete": "regression", "digits": "classification"}
    detail = client.get("/v1/models/concrete").json()
    assert detail["features"][:2] == ["cement", "slag"]
    assert len(detail["features"]) == 8
    assert detail["tau"][0] > 0


def test_concrete_predictions_equal_onnx_runtime(client: httpx.Client) -> None:
    body = client.post("/v1/models/concrete/predict", json={"instances": CONCRETE_ROWS}).json()
    expected = run_onnx("concrete", CONCRETE_ROWS, "prediction")
    np.testing.assert_allclose(np.asarray(body["predictions"]), expected, rtol=1e-6)
    assert body["version"] == latest_bundle("concrete")[0]


def test_digits_predictions_equal_onnx_runtime(client: httpx.Client) -> None:
    rows = [[float((i * 7 + j) % 17) for j in range(64)] for i in range(4)]
    body = client.post("/v1/models/digits/predict", json={"instances": rows}).json()
    expected = run_onnx("digits", rows, "probabilities")
    got = np.asarray([row["probabilities"] for row in body["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert [row["label"] for row in body["predictions"]] == [
        body["outputs"][i] for i in expected.argmax(axis=1)
    ]


def test_uncertainty_mean_is_near_the_deterministic_prediction(client: httpx.Client) -> None:
    det = client.post("/v1/models/concrete/predict", json={"instances": CONCRETE_ROWS}).json()
    request = {"instances": CONCRETE_ROWS, "samples": 2000, "seed": 3}
    mc = client.post("/v1/models/concrete/uncertainty", json=request).json()
    assert mc["device"] == "cpu"
    for det_row, row in zip(det["predictions"], mc["predictions"], strict=True):
        assert row["epistemic_variance"][0] > 0
        assert row["aleatoric_variance"][0] > 0
        assert row["variance"][0] > row["epistemic_variance"][0]
        # ReLU + input dropout: not equal, but well within the predictive spread.
        assert abs(row["mean"][0] - det_row[0]) < 0.5 * row["std"][0]
        assert row["lower"][0] < det_row[0] < row["upper"][0]


def test_seed_reproduces_exactly(client: httpx.Client) -> None:
    request = {"instances": CONCRETE_ROWS, "samples": 500, "seed": 42}
    first = client.post("/v1/models/concrete/uncertainty", json=request).json()
    second = client.post("/v1/models/concrete/uncertainty", json=request).json()
    assert first == second
    other = client.post("/v1/models/concrete/uncertainty", json={**request, "seed": 43}).json()
    assert other["predictions"] != first["predictions"]


def test_digits_uncertainty(client: httpx.Client) -> None:
    rows = [[float((i * 5 + j) % 16) for j in range(64)] for i in range(3)]
    request = {"instances": rows, "samples": 300, "seed": 1}
    body = client.post("/v1/models/digits/uncertainty", json=request).json()
    for row in body["predictions"]:
        assert math.isclose(sum(row["probabilities"]), 1.0, rel_tol=1e-6)
        assert 0 <= row["mutual_information"] <= row["predictive_entropy"] <= math.log(10)


def test_bad_input_is_a_clear_4xx_over_the_wire(client: httpx.Client) -> None:
    response = client.post("/v1/models/concrete/predict", json={"instances": [[1, 2, 3]]})
    assert response.status_code == 422
    assert "expects 8 features in this order: cement, slag" in response.json()["error"]
    raw = client.post(
        "/v1/models/concrete/predict",
        content=b'{"instances": [[1,2,3,4,5,6,7,NaN]]}',
        headers={"content-type": "application/json"},
    )
    assert raw.status_code == 422
    assert "finite number" in raw.json()["error"]


def test_liveness_answers_while_a_long_request_runs(server: Server) -> None:
    rows = [[float((i + j) % 16) for j in range(64)] for i in range(200)]
    heavy = {"instances": rows, "samples": 10_000, "seed": 0}
    order: list[str] = []

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=300.0) as client:

            async def long_request() -> None:
                response = await client.post("/v1/models/digits/uncertainty", json=heavy)
                assert response.status_code == 200, response.text
                order.append("uncertainty")

            task = asyncio.create_task(long_request())
            await asyncio.sleep(0.3)  # let the heavy request reach the worker thread
            live = await client.get("/health/live")
            assert live.status_code == 200
            order.append("live")
            await task

    asyncio.run(scenario())
    assert order == ["live", "uncertainty"]
