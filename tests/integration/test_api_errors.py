"""Every client mistake gets a 4xx with a message naming the problem; never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.engines import OnnxEngine
from tests.integration.conftest import make_client

PREDICT = "/v1/models/toyreg/versions/1/predict"
UNCERTAINTY = "/v1/models/toyreg/versions/1/uncertainty"


def error_of(response: object, status: int) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]  # type: ignore[attr-defined]
    message: str = body["error"]
    return message


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        (
            "/v1/models/nope/predict",
            404,
            "model 'nope' is not loaded; loaded models: toycls, toyreg",
        ),
        ("/v1/models/toyreg/versions/7/predict", 404, "no version 7; available versions: 1, 2"),
        ("/v1/models/nope/uncertainty", 404, "model 'nope' is not loaded"),
    ],
)
def test_unknown_model_or_version(client: TestClient, path: str, status: int, needle: str) -> None:
    assert needle in error_of(client.post(path, json={"instances": [[1, 2, 3]]}), status)


def test_unknown_model_metadata(client: TestClient) -> None:
    assert "not loaded" in error_of(client.get("/v1/models/nope"), 404)
    assert "no version 3" in error_of(client.get("/v1/models/toyreg/versions/3"), 404)


@pytest.mark.parametrize(
    ("instances", "needle"),
    [
        ([], "instances is empty"),
        (
            [[1, 2]],
            "instances[0] has 2 values but the model expects 3 features in this order: x0, x1, x2",
        ),
        ([[1, 2, 3], [1, 2, 3, 4]], "instances[1] has 4 values"),
        ([{"x0": 1, "x1": 2}], "instances[0] is missing feature(s) 'x2'; expected: x0, x1, x2"),
        ([{"x0": 1, "x1": 2, "x2": 3, "cement": 4}], "unknown feature(s) 'cement'"),
        ([{"x0": 1, "x1": 2, "x2": 3, "y0": 4}], "has 'y0', the model's target"),
        ([[1, "two", 3]], "instances[0], feature 'x1': value must be a number, got 'two'"),
        ([[1, 2, None]], "feature 'x2': value must be a number, got null"),
        (
            [[1, "46.3", 3]],
            "feature 'x1': value must be a number, got '46.3' (a string); send 46.3 without quotes",
        ),
        ([[True, 2, 3]], "feature 'x0': value must be a number, got true"),
        ([[[1], 2, 3]], "feature 'x0': value must be a number, got [1]"),
        (["1,2,3"], "instances[0] must be a list of 3 numbers or an object"),
        ("abc", "'instances': Input should be a valid list"),
    ],
)
def test_bad_instances(client: TestClient, instances: object, needle: str) -> None:
    for path in (PREDICT, UNCERTAINTY):
        assert needle in error_of(client.post(path, json={"instances": instances}), 422)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values(client: TestClient, token: str) -> None:
    body = f'{{"instances": [[1, {token}, 3]]}}'.encode()
    response = client.post(PREDICT, content=body, headers={"content-type": "application/json"})
    assert "feature 'x1': value must be a finite number" in error_of(response, 422)


def test_too_many_rows(client: TestClient) -> None:
    response = client.post(PREDICT, json={"instances": [[1, 2, 3]] * 51})
    assert "51 rows; the limit is 50 per request" in error_of(response, 422)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"samples": 0}, "'samples': Input should be greater than or equal to 1"),
        ({"samples": 5001}, "samples must be between 1 and 5000, got 5001"),
        ({"samples": "many"}, "'samples': Input should be a valid integer"),
        ({"seed": -1}, "'seed': Input should be greater than or equal to 0"),
        ({"interval": 1.0}, "'interval': Input should be less than 1"),
        ({"interval": 0}, "'interval': Input should be greater than 0"),
        ({"return_samples": True, "samples": 101}, "return_samples is allowed up to 100 samples"),
        ({"colour": "red"}, "'colour' is not a known field; remove it"),
    ],
)
def test_bad_uncertainty_parameters(
    client: TestClient, extra: dict[str, object], needle: str
) -> None:
    response = client.post(UNCERTAINTY, json={"instances": [[1, 2, 3]], **extra})
    assert needle in error_of(response, 422)


def test_work_bound(client: TestClient) -> None:
    response = client.post(UNCERTAINTY, json={"instances": [[1, 2, 3]] * 5, "samples": 4001})
    assert "rows x samples = 5 x 4001 = 20005 exceeds the limit of 20000" in error_of(response, 422)


def test_missing_instances(client: TestClient) -> None:
    assert "'instances' is required" in error_of(client.post(PREDICT, json={}), 422)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"instances": [[1, 2, 3]', "request body is not valid JSON"),
        (b"", "request body is missing"),
        (b"[1, 2, 3]", "invalid request"),
    ],
)
def test_malformed_bodies(client: TestClient, body: bytes, needle: str) -> None:
    response = client.post(PREDICT, content=body, headers={"content-type": "application/json"})
    assert needle in error_of(response, 400 if b"{" in body or not body else 422)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(PREDICT, content=b'{"instances": [[1, 2, 3]]}', headers=headers)
    assert "Content-Type must be application/json" in error_of(response, 415)


def test_json_with_charset_is_accepted(client: TestClient) -> None:
    headers = {"content-type": "application/json; charset=utf-8"}
    response = client.post(PREDICT, content=b'{"instances": [[1, 2, 3]]}', headers=headers)
    assert response.status_code == 200


@pytest.fixture(scope="module")
def small_body_client(toy_models_dir: Path) -> Iterator[TestClient]:
    yield from make_client(toy_models_dir, max_body_bytes=2048)


def test_body_over_limit_declared(small_body_client: TestClient) -> None:
    body = b'{"instances": [' + b"[1, 2, 3]," * 400 + b"[1, 2, 3]]}"
    response = small_body_client.post(
        PREDICT, content=body, headers={"content-type": "application/json"}
    )
    assert "exceeds the limit of 2048 bytes" in error_of(response, 413)


def test_body_over_limit_streamed(small_body_client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(400):
            yield b"[1, 2, 3],"
        yield b"[1, 2, 3]]}"

    response = small_body_client.post(
        PREDICT, content=chunks(), headers={"content-type": "application/json"}
    )
    assert "exceeds the limit of 2048 bytes" in error_of(response, 413)


def test_unknown_route_and_method(client: TestClient) -> None:
    assert "no route GET /v1/nothing" in error_of(client.get("/v1/nothing"), 404)
    assert "method GET is not allowed" in error_of(client.get(PREDICT), 405)


def test_unexpected_failure_is_a_generic_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: OnnxEngine, features: object) -> object:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(OnnxEngine, "predict", broken)
    response = client.post(PREDICT, json={"instances": [[1, 2, 3]]})
    message = error_of(response, 500)
    assert "secret" not in message
    assert message == "internal server error; the failure was logged"
    assert "secret internal detail" in caplog.text
