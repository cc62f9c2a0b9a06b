"""API keys, CORS, the in-flight bound (503 + Retry-After) and the request timeout (504)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.dataplane.plane import DataPlane
from service.dataplane.registry import ModelRegistry
from service.engines import OnnxEngine
from service.errors import InvalidInputError, OverloadedError, RequestTimeoutError
from tests.integration.conftest import make_client

ROW = {"instances": [[1.0, 2.0, 3.0]]}
PREDICT = "/v1/models/toyreg/versions/1/predict"


@pytest.fixture(scope="module")
def keyed(toy_models_dir: Path) -> Iterator[TestClient]:
    yield from make_client(toy_models_dir, api_keys="key-one,key-two")


@pytest.mark.parametrize(
    "headers", [{}, {"X-API-Key": "nope"}, {"Authorization": "Bearer nope"}, {"X-API-Key": ""}]
)
def test_model_endpoints_need_a_key(keyed: TestClient, headers: dict[str, str]) -> None:
    for method, path in (("POST", PREDICT), ("GET", "/v1/models"), ("GET", "/v2/models/toyreg")):
        response = keyed.request(method, path, json=ROW, headers=headers)
        assert response.status_code == 401, path
        assert "needs an API key" in response.json()["error"]


@pytest.mark.parametrize("headers", [{"X-API-Key": "key-one"}, {"Authorization": "Bearer key-two"}])
def test_either_key_in_either_header_is_accepted(
    keyed: TestClient, headers: dict[str, str]
) -> None:
    assert keyed.post(PREDICT, json=ROW, headers=headers).status_code == 200


def test_health_and_docs_stay_open(keyed: TestClient) -> None:
    for path in ("/health/live", "/health/ready", "/v2/health/ready", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path


def test_cors_is_off_by_default(client: TestClient) -> None:
    response = client.get("/v1/models", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_configured_origins_only(toy_models_dir: Path) -> None:
    for client in make_client(toy_models_dir, cors_origins="https://app.example"):
        preflight = client.options(
            PREDICT,
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        other = client.get("/v1/models", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def _dataplane(models_dir: Path, **overrides: Any) -> DataPlane:
    settings = Settings(models_dir=models_dir, warmup_rounds=0, **overrides)
    registry = ModelRegistry(settings)
    registry.load_all()
    return DataPlane(registry, settings)


def test_requests_beyond_the_queue_bound_get_503(
    toy_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # inline_max_macs=0: even these tiny requests go through the worker queue under test.
    dataplane = _dataplane(toy_models_dir, inference_threads=1, max_queue=1, inline_max_macs=0)
    release = threading.Event()
    original = OnnxEngine.predict

    def blocked(self: OnnxEngine, features: np.ndarray) -> np.ndarray:
        release.wait(timeout=10)
        return original(self, features)

    monkeypatch.setattr(OnnxEngine, "predict", blocked)
    outcomes: list[str] = []

    async def one() -> None:
        try:
            await dataplane.predict("toyreg", None, [[1.0, 2.0, 3.0]])
            outcomes.append("ok")
        except OverloadedError as exc:
            outcomes.append(exc.message)

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(3):  # one runs, one waits, the third is over the bound
                group.start_soon(one)
            while len(outcomes) < 1:
                await anyio.sleep(0.01)
            assert dataplane.inflight == 2
            release.set()

    anyio.run(scenario)
    assert outcomes[0] == (
        "the server is at capacity (2 inference requests in flight, limit 2); retry after a moment"
    )
    assert outcomes[1:] == ["ok", "ok"]
    assert dataplane.inflight == 0


def test_overload_answers_503_with_retry_after(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def overloaded(*_: object, **__: object) -> None:
        raise OverloadedError("the server is at capacity")

    monkeypatch.setattr(DataPlane, "predict", overloaded)
    response = client.post(PREDICT, json=ROW)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


def test_slow_uncertainty_answers_504_and_stops_computing(toy_models_dir: Path) -> None:
    dataplane = _dataplane(toy_models_dir, request_timeout_s=0.05, mc_chunk_elements=1024)

    async def slow() -> None:
        await dataplane.uncertainty("toyreg", None, [[1.0, 2.0, 3.0]] * 40, samples=10_000)

    with pytest.raises(RequestTimeoutError, match=r"stopped after \d+ of 10000 passes|within"):
        anyio.run(slow)
    assert dataplane.inflight == 0


def test_timeout_over_http_is_a_504(toy_models_dir: Path) -> None:
    for client in make_client(toy_models_dir, request_timeout_s=0.05, mc_chunk_elements=1024):
        request = {"instances": [[1.0, 2.0, 3.0]] * 40, "samples": 10_000}
        response = client.post("/v1/models/toyreg/uncertainty", json=request)
        assert response.status_code == 504
        assert "timeout" in response.json()["error"]
        assert client.post(PREDICT, json=ROW).status_code == 200


@pytest.fixture(scope="module")
def small_answers(toy_models_dir: Path) -> Iterator[TestClient]:
    yield from make_client(toy_models_dir, max_return_samples=100, max_returned_values=600)


def test_returned_samples_are_bounded_by_the_values_they_answer(
    small_answers: TestClient,
) -> None:
    """toycls has 3 classes: 3 rows x 100 samples x 3 = 900 values, over 600; 2 rows fit."""
    path = "/v1/models/toycls/uncertainty"
    request = {"instances": [[1.0, 2.0, 3.0]] * 3, "samples": 100, "return_samples": True}
    response = small_answers.post(path, json=request)
    assert response.status_code == 422
    assert response.json()["error"] == (
        "returning the samples would answer rows x samples x outputs = 3 x 100 x 3 = 900 "
        "values, over the limit of 600 per answer; send at most 2 rows at this number of "
        "samples, fewer samples, or do not ask for the samples"
    )
    # The same work without the samples is a small answer, and allowed.
    assert small_answers.post(path, json={**request, "return_samples": False}).status_code == 200
    fits = small_answers.post(path, json={**request, "instances": request["instances"][:2]})
    assert fits.status_code == 200
    assert len(fits.json()["predictions"][1]["samples"]) == 100


def test_returned_draws_over_v2_are_bounded_too(small_answers: TestClient) -> None:
    request = {
        "inputs": [{"name": "features", "shape": [3, 3], "datatype": "FP32", "data": [1.0] * 9}],
        "parameters": {"mode": "uncertainty", "samples": 100},
        "outputs": [{"name": "draws"}],
    }
    response = small_answers.post("/v2/models/toycls/infer", json=request)
    assert response.status_code == 400
    assert "3 x 100 x 3 = 900 values, over the limit of 600" in response.json()["error"]


def test_one_row_past_the_bound_is_told_to_lower_samples(toy_models_dir: Path) -> None:
    dataplane = _dataplane(toy_models_dir, max_returned_values=250)
    with pytest.raises(InvalidInputError, match="lower samples to 83 or fewer, or do not ask"):
        dataplane.check_mc_request(1, 100, True, outputs=3)
