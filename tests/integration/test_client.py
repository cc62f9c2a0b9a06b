"""The Python client against the app in process: results, options, errors, keys, async."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.client import (
    ApiError,
    AsyncClient,
    ClassUncertainty,
    Client,
    PredictResult,
    RegressionUncertainty,
    UncertaintyResult,
)
from tests.integration.conftest import make_client

ROWS = [[0.5, -1.0, 2.0], [3.0, 1.5, -0.5]]


@pytest.fixture
def api(client: TestClient) -> Client:
    return Client(http=client)


def test_models_and_model(api: Client) -> None:
    models = {entry.name: entry for entry in api.models()}
    assert models["toyreg"].versions == [1, 2]
    assert models["toycls"].task == "classification"
    detail = api.model("toyreg", version=1)
    assert (detail.version, detail.features, detail.outputs) == (1, ["x0", "x1", "x2"], ["y0"])
    assert detail.raw["limits"]["max_rows"] == 50


def test_predict_regression_and_classification(api: Client, client: TestClient) -> None:
    result = api.predict("toyreg", ROWS, version=1)
    raw = client.post("/v1/models/toyreg/versions/1/predict", json={"instances": ROWS}).json()
    assert isinstance(result, PredictResult)
    assert result.values == raw["predictions"]
    assert result.labels is None
    labelled = api.predict("toycls", np.asarray(ROWS))  # a NumPy array is converted
    assert labelled.labels is not None
    assert len(labelled.labels) == 2
    assert all(sum(row) == pytest.approx(1.0) for row in labelled.values)


def test_rows_as_dicts(api: Client) -> None:
    rows = [{"x2": r[2], "x0": r[0], "x1": r[1]} for r in ROWS]
    assert api.predict("toyreg", rows).values == api.predict("toyreg", ROWS).values


def test_uncertainty_options_reach_the_server(api: Client) -> None:
    result = api.uncertainty(
        "toyreg", ROWS, samples=20, seed=3, interval=0.5, return_samples=True, version=2
    )
    assert isinstance(result, UncertaintyResult)
    assert (result.samples, result.seed, result.interval, result.version) == (20, 3, 0.5, 2)
    row = result.regression[0]
    assert isinstance(row, RegressionUncertainty)
    assert row.samples is not None
    assert len(row.samples) == 20
    assert row.lower[0] <= row.mean[0] <= row.upper[0]
    assert api.uncertainty("toyreg", ROWS, samples=20, seed=3, version=2).raw["seed"] == 3
    with pytest.raises(TypeError, match="regression model"):
        _ = result.classification


def test_uncertainty_classification(api: Client) -> None:
    result = api.uncertainty("toycls", ROWS, samples=10, seed=1)
    row = result.classification[1]
    assert isinstance(row, ClassUncertainty)
    assert row.samples is None
    assert row.mutual_information == pytest.approx(row.predictive_entropy - row.expected_entropy)


def test_errors_carry_status_message_and_request_id(api: Client) -> None:
    with pytest.raises(ApiError) as refused:
        api.predict("toyreg", [[1.0, 2.0]])
    assert refused.value.status == 422
    assert "expects 3 features" in refused.value.message
    assert refused.value.request_id
    assert refused.value.request_id in str(refused.value)
    with pytest.raises(ApiError) as missing:
        api.model("houses")
    assert missing.value.status == 404
    assert "houses" in missing.value.message
    with pytest.raises(TypeError, match="wrap one row"):
        api.predict("toyreg", {"x0": 1.0})


def test_ready(api: Client) -> None:
    assert api.ready() is True


@pytest.fixture(scope="module")
def keyed(toy_models_dir: Path) -> Iterator[TestClient]:
    yield from make_client(toy_models_dir, api_keys="key-one")


def test_api_key(keyed: TestClient) -> None:
    assert Client(http=keyed, api_key="key-one").predict("toyreg", ROWS).version == 2
    with pytest.raises(ApiError) as refused:
        Client(http=keyed).predict("toyreg", ROWS)
    assert refused.value.status == 401


def _failing(exc: Exception) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://server")


def test_no_answer_is_an_api_error_without_status() -> None:
    timed_out = Client(http=_failing(httpx.ReadTimeout("slow")))
    with pytest.raises(ApiError, match=r"within 5.0 s") as late:
        timed_out.models()
    assert late.value.status is None
    assert late.value.request_id is None
    refused = Client(http=_failing(httpx.ConnectError("refused")))
    with pytest.raises(ApiError, match="cannot reach http://server/v1/models"):
        refused.models()


def test_an_error_page_that_is_not_json() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="Bad Gateway", headers={"X-Request-ID": "proxy-1"})

    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://server")
    with pytest.raises(ApiError) as failed:
        Client(http=http).models()
    assert (failed.value.status, failed.value.message, failed.value.request_id) == (
        502,
        "Bad Gateway",
        "proxy-1",
    )


def test_async_client(client: TestClient) -> None:
    async def calls() -> tuple[UncertaintyResult, bool, ApiError]:
        # Run in the app's own event loop (the TestClient's portal), where its state lives.
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            api = AsyncClient(http=http)
            result = await api.uncertainty("toyreg", ROWS, samples=5, seed=2, version=1)
            ready = await api.ready()
            assert [m.name for m in await api.models()] == ["toycls", "toyreg"]
            try:
                await api.predict("houses", ROWS)
            except ApiError as exc:
                return result, ready, exc
        raise AssertionError("an unknown model was answered")

    result, ready, error = client.portal.call(calls)  # type: ignore[union-attr]
    expected = Client(http=client).uncertainty("toyreg", ROWS, samples=5, seed=2, version=1)
    assert result.rows == expected.rows
    assert ready
    assert error.status == 404


def test_importing_the_client_loads_no_engine() -> None:
    code = (
        "import sys, service.client; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'numpy', 'fastapi') if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
