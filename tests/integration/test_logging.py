"""Access lines: valid JSON with the documented fields, the request id echoed and logged, and
never a feature value or a token."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.dataplane.plane import DataPlane
from service.observability import configure_logging
from tests.integration.conftest import make_client

TOKEN = "s3cret-admin-token-value"
API_KEY = "api-key-never-logged"
# Distinctive values that would be easy to spot in a log line.
ROW = [123.456789, 987.654321, 555.125]
SECRET_TEXT = [TOKEN, API_KEY, "wrong-guess-1234", "123.456789", "987.654321", "555.125"]
ACCESS_FIELDS = {"method", "path", "status", "duration_ms", "model", "version", "mode", "rows"}
ACCESS_FIELDS |= {"samples", "time", "level", "logger", "message", "request_id"}


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """Every record of the test as JSON lines, through the server's own logging setup."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    yield stream
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def client(toy_models_dir: Path, log: io.StringIO) -> Iterator[TestClient]:
    yield from make_client(toy_models_dir, admin_token=TOKEN)


def entries(log: io.StringIO) -> list[dict[str, Any]]:
    lines = [line for line in log.getvalue().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(entry, dict) for entry in parsed)
    return parsed


def access_lines(log: io.StringIO, request_id: str | None = None) -> list[dict[str, Any]]:
    found = [e for e in entries(log) if e["logger"] == "service.observability.access"]
    return found if request_id is None else [e for e in found if e["request_id"] == request_id]


def test_a_request_id_is_echoed_and_logged(client: TestClient, log: io.StringIO) -> None:
    headers = {"X-Request-ID": "trace-42"}
    response = client.post("/v1/models/toyreg/predict", json={"instances": [ROW]}, headers=headers)
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-42"
    (line,) = access_lines(log, "trace-42")
    assert set(line) == ACCESS_FIELDS
    assert line["method"] == "POST"
    assert line["path"] == "/v1/models/{name}/predict"
    assert (line["status"], line["model"], line["version"]) == (200, "toyreg", 2)
    assert (line["mode"], line["rows"], line["samples"]) == ("predict", 1, None)
    assert line["duration_ms"] > 0
    assert line["level"] == "info"


def test_uncertainty_lines_carry_the_samples(client: TestClient, log: io.StringIO) -> None:
    body = {"instances": [ROW, ROW], "samples": 30, "seed": 1}
    response = client.post("/v1/models/toycls/uncertainty", json=body)
    (line,) = access_lines(log, response.headers["x-request-id"])
    assert (line["model"], line["version"], line["mode"]) == ("toycls", 1, "uncertainty")
    assert (line["rows"], line["samples"]) == (2, 30)


def test_a_generated_id_is_unique_and_replaces_an_unsafe_one(
    client: TestClient, log: io.StringIO
) -> None:
    ids = {client.get("/health/live").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    unsafe = client.get("/health/live", headers={"X-Request-ID": "forged\\nline"})
    assert unsafe.headers["x-request-id"] != "forged\\nline"
    assert "forged" not in log.getvalue()


def test_errors_carry_the_request_id(client: TestClient, log: io.StringIO) -> None:
    headers = {"X-Request-ID": "err-1"}
    response = client.post(
        "/v1/models/toyreg/predict", json={"instances": [ROW[:2]]}, headers=headers
    )
    assert response.status_code == 422
    assert response.json()["request_id"] == "err-1"
    (line,) = access_lines(log, "err-1")
    assert (line["status"], line["model"], line["rows"]) == (422, "toyreg", None)
    refused = client.post(
        "/v1/models/toyreg/predict",
        content=b"x" * 9_000_000,
        headers={"content-type": "application/json", "X-Request-ID": "big-1"},
    )
    assert refused.status_code == 413
    assert refused.json()["request_id"] == refused.headers["x-request-id"] == "big-1"
    assert access_lines(log, "big-1")[0]["path"] == "/v1/models/{name}/predict"


def test_a_500_logs_its_traceback_with_the_request_id(
    client: TestClient, log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(DataPlane, "predict", broken)
    response = client.post("/v1/models/toyreg/predict", json={"instances": [ROW]})
    request_id = response.headers["x-request-id"]
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal server error; the failure was logged",
        "request_id": request_id,
    }
    (failure,) = [e for e in entries(log) if e.get("request_id") == request_id and "exception" in e]
    assert failure["level"] == "error"
    assert "RuntimeError: a bug" in failure["exception"]
    assert access_lines(log, request_id)[0]["status"] == 500


def test_tokens_and_feature_values_never_reach_the_log(
    toy_models_dir: Path, log: io.StringIO
) -> None:
    for client in make_client(toy_models_dir, admin_token=TOKEN, api_keys=API_KEY):
        keyed = {"X-API-Key": API_KEY}
        client.post("/v1/models/toyreg/predict", json={"instances": [ROW]}, headers=keyed)
        client.post("/v1/models/toyreg/predict", json={"instances": [ROW[:2]]}, headers=keyed)
        client.post("/v1/models/toyreg/predict", json={"instances": [ROW]})  # no key: 401
        bad = {"instances": [[ROW[0], "wrong-guess-1234", ROW[2]]], "samples": 10}
        client.post("/v1/models/toyreg/uncertainty", json=bad, headers=keyed)
        v2 = {"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": ROW}]}
        client.post("/v2/models/toyreg/infer", json=v2, headers=keyed)
        client.post("/admin/reload", headers={"Authorization": "Bearer wrong-guess-1234"})
        client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    text = log.getvalue()
    assert len(access_lines(log)) >= 7
    for secret in SECRET_TEXT:
        assert secret not in text, secret
