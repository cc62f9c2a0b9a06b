"""Every bad /v2 request is a 400 `{"error": ...}` naming the problem (never a 422), an unknown
model 404, and feature problems carry the same messages as the JSON API's."""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.engines import OnnxEngine
from tests.integration.conftest import make_client

INFER = "/v2/models/toyreg/versions/1/infer"
HEADER = "Inference-Header-Content-Length"


def features(**changes: Any) -> dict[str, Any]:
    return {"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3], **changes}


def error_of(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    message: str = body["error"]
    return message


def binary_body(header: dict[str, Any], *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    encoded = json.dumps(header).encode()
    headers = {HEADER: str(len(encoded)), "content-type": "application/octet-stream"}
    return encoded + b"".join(blobs), headers


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"inputs": [', "request body is not valid JSON"),
        (b"", "request body is not valid JSON"),
        (b"[1, 2]", "invalid request"),
        (b"{}", "'inputs' is required"),
        (b'{"inputs": []}', "'inputs': List should have at least 1 item"),
    ],
)
def test_malformed_bodies(client: TestClient, body: bytes, needle: str) -> None:
    assert needle in error_of(client.post(INFER, content=body), 400)


@pytest.mark.parametrize(
    ("request_body", "needle"),
    [
        ({"inputs": [features()], "colour": 1}, "'colour' is not a known field; remove it"),
        ({"inputs": [{"name": "features", "shape": [1, 3]}]}, "'inputs[0].datatype' is required"),
        ({"inputs": [features(shape=[-1, 3])]}, "'inputs[0].shape[0]': Input should be greater"),
        (
            {"inputs": [features(name="x")]},
            "model 'toyreg' takes one input 'features' (FP32, shape [-1, 3]), got ['x']; "
            "features go in this order: x0, x1, x2",
        ),
        ({"inputs": [features(), features()]}, "got ['features', 'features']"),
        ({"inputs": [features(datatype="BYTES", data=["a"])]}, "has datatype BYTES; features"),
        ({"inputs": [features(datatype="BOOL")]}, "has datatype BOOL; features are numbers"),
        ({"inputs": [features(shape=[3])]}, "has shape [3]; it must be [rows, features]"),
        (
            {"inputs": [features(shape=[2, 3])]},
            "input 'features' has shape [2, 3] (6 values) but its data holds 3 values",
        ),
        ({"inputs": [features(data=None)]}, "input 'features' has no data; send `data`"),
        ({"inputs": [features(data=[], shape=[0, 3])]}, "instances is empty"),
        # Feature problems: the JSON API's messages, word for word.
        (
            {"inputs": [features(data=[1, 2], shape=[1, 2])]},
            "instances[0] has 2 values but the model expects 3 features in this order: x0, x1, x2",
        ),
        (
            {"inputs": [features(data=[1, "two", 3])]},
            "instances[0], feature 'x1': value must be a number, got 'two'",
        ),
        ({"inputs": [features(data=[True, 2, 3])]}, "'x0': value must be a number, got true"),
        ({"inputs": [features(data=[1, 2, None])]}, "'x2': value must be a number, got null"),
        (
            {"inputs": [features(data=[1, 2, 3] * 51, shape=[51, 3])]},
            "instances has 51 rows; the limit is 50 per request",
        ),
    ],
)
def test_bad_inputs(client: TestClient, request_body: dict[str, Any], needle: str) -> None:
    assert needle in error_of(client.post(INFER, json=request_body), 400)


@pytest.mark.parametrize(
    ("parameters", "needle"),
    [
        ({"mode": "bogus"}, "'parameters.mode': Input should be 'predict' or 'uncertainty'"),
        ({"sample": 5}, "'parameters.sample' is not a known field; remove it"),
        (
            {"samples": 5, "seed": 1},
            "parameter(s) 'samples', 'seed' only apply to Monte-Carlo dropout; add "
            '"mode": "uncertainty"',
        ),
        ({"mode": "uncertainty", "samples": 0}, "'parameters.samples': Input should be greater"),
        ({"mode": "uncertainty", "samples": "9"}, "'parameters.samples': Input should be a valid"),
        ({"mode": "uncertainty", "samples": 5001}, "samples must be between 1 and 5000, got 5001"),
        ({"mode": "uncertainty", "seed": -1}, "'parameters.seed': Input should be greater"),
        ({"mode": "uncertainty", "interval": 1.0}, "'parameters.interval': Input should be less"),
        ({"binary_data_output": "yes"}, "'parameters.binary_data_output': Input should be a"),
    ],
)
def test_bad_parameters(client: TestClient, parameters: dict[str, Any], needle: str) -> None:
    response = client.post(INFER, json={"inputs": [features()], "parameters": parameters})
    assert needle in error_of(response, 400)


def test_work_bound(client: TestClient) -> None:
    request = {
        "inputs": [features(data=[1, 2, 3] * 5, shape=[5, 3])],
        "parameters": {"mode": "uncertainty", "samples": 4001},
    }
    message = error_of(client.post(INFER, json=request), 400)
    assert "rows x samples = 5 x 4001 = 20005 exceeds the limit of 20000" in message


@pytest.mark.parametrize(
    ("mode", "outputs", "needle"),
    [
        ("predict", ["foo"], "model 'toyreg' has no output 'foo' in mode 'predict'; outputs: "),
        (
            "predict",
            ["mean"],
            "output 'mean' is produced in mode 'uncertainty', not 'predict'; set "
            '"parameters": {"mode": "uncertainty"}',
        ),
        ("uncertainty", ["prediction"], "output 'prediction' is produced in mode 'predict'"),
        ("uncertainty", ["mean", "mean"], "output 'mean' is requested twice"),
        ("uncertainty", ["draws"], "output 'draws' is allowed up to 100 samples, got 101"),
    ],
)
def test_bad_outputs(client: TestClient, mode: str, outputs: list[str], needle: str) -> None:
    request = {
        "inputs": [features()],
        "outputs": [{"name": name} for name in outputs],
        "parameters": {"mode": mode, **({"samples": 101} if mode == "uncertainty" else {})},
    }
    assert needle in error_of(client.post(INFER, json=request), 400)


def test_triton_classification_extension_is_refused(client: TestClient) -> None:
    request = {
        "inputs": [features()],
        "outputs": [{"name": "prediction", "parameters": {"classification": 2}}],
    }
    message = error_of(client.post(INFER, json=request), 400)
    assert "'outputs[0].parameters.classification' is not a known field" in message


FP32_ROW = struct.pack("<3f", 1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    ("header", "blobs", "length", "needle"),
    [
        (
            {"inputs": [features(data=None, parameters={"binary_data_size": 12})]},
            [FP32_ROW],
            "abc",
            "Inference-Header-Content-Length is 'abc'; it must be the byte length",
        ),
        (
            {"inputs": [features(data=None, parameters={"binary_data_size": 12})]},
            [FP32_ROW],
            "99999",
            "at most the body's",
        ),
        (
            {"inputs": [features(data=None, parameters={"binary_data_size": 16})]},
            [FP32_ROW],
            None,
            "declares 16 bytes of binary data but only 12 remain after the JSON header",
        ),
        (
            {"inputs": [features(data=None, parameters={"binary_data_size": 12})]},
            [FP32_ROW, b"\x00\x00"],
            None,
            "the body has 2 bytes after the JSON header and the inputs' binary data",
        ),
        (
            {"inputs": [features(parameters={"binary_data_size": 12})]},
            [FP32_ROW],
            None,
            "input 'features' has both data and binary_data_size; send one of them",
        ),
        (
            {"inputs": [features(data=None, parameters={"binary_data_size": 8})]},
            [FP32_ROW[:8]],
            None,
            "shape [1, 3] and datatype FP32 needs 12 bytes of binary data, got 8",
        ),
        (
            {"inputs": [features(data=None, parameters={"binary_data_size": 12})]},
            [struct.pack("<3f", 1.0, 2.0, float("nan"))],
            None,
            "instances[0], feature 'x2': value must be a finite number, got nan",
        ),
        (
            {"inputs": [features(data=None, datatype="FP64", parameters={"binary_data_size": 24})]},
            [struct.pack("<3d", float("-inf"), 2.0, 3.0)],
            None,
            "instances[0], feature 'x0': value must be a finite number, got -inf",
        ),
    ],
)
def test_bad_binary_framing(
    client: TestClient, header: dict[str, Any], blobs: list[bytes], length: str | None, needle: str
) -> None:
    body, headers = binary_body(header, *blobs)
    if length is not None:
        headers[HEADER] = length
    assert needle in error_of(client.post(INFER, content=body, headers=headers), 400)


def test_binary_input_without_the_header_length(client: TestClient) -> None:
    body, _ = binary_body(
        {"inputs": [features(data=None, parameters={"binary_data_size": 12})]}, FP32_ROW
    )
    response = client.post(INFER, content=body[: -len(FP32_ROW)])
    message = error_of(response, 400)
    assert "has binary_data_size but the request has no Inference-Header-Content-Length" in message


@pytest.mark.parametrize(
    ("encoding", "body", "needle"),
    [
        ("br", b"{}", "Content-Encoding br is not supported; send the body uncompressed"),
        ("gzip", b"not gzip at all", "request body is not valid gzip data"),
        ("gzip", gzip.compress(b'{"inputs": []}')[:-12], "ends before its gzip stream does"),
    ],
)
def test_bad_compression(client: TestClient, encoding: str, body: bytes, needle: str) -> None:
    response = client.post(INFER, content=body, headers={"content-encoding": encoding})
    assert needle in error_of(response, 400)


@pytest.fixture(scope="module")
def small_body_client(toy_models_dir: Path) -> Iterator[TestClient]:
    yield from make_client(toy_models_dir, max_body_bytes=2048)


def test_a_compressed_body_may_not_inflate_past_the_limit(small_body_client: TestClient) -> None:
    bomb = gzip.compress(b" " * 1_000_000)
    assert len(bomb) < 2048
    response = small_body_client.post(INFER, content=bomb, headers={"content-encoding": "gzip"})
    assert "inflates to more than the limit of 2048 bytes" in error_of(response, 413)


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/v2/models/nope/infer", "model 'nope' is not loaded; loaded models: toycls, toyreg"),
        ("/v2/models/toyreg/versions/7/infer", "has no version 7; available versions: 1, 2"),
        ("/v2/models/toyreg/versions/latest/infer", "has no version 'latest'"),
    ],
)
def test_unknown_model_or_version(client: TestClient, path: str, needle: str) -> None:
    assert needle in error_of(client.post(path, json={"inputs": [features()]}), 404)


def test_wrong_method(client: TestClient) -> None:
    assert "method GET is not allowed" in error_of(client.get(INFER), 405)


def test_unexpected_failure_is_a_generic_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: OnnxEngine, features: object) -> object:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(OnnxEngine, "predict", broken)
    message = error_of(client.post(INFER, json={"inputs": [features()]}), 500)
    assert message == "internal server error; the failure was logged"
    assert "secret internal detail" in caplog.text
