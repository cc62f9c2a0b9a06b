"""Triton's binary tensor data extension, framed and parsed by tritonclient's own code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from tritonclient.utils import np_to_triton_dtype

from tests.integration.conftest import make_client

ROWS = np.asarray([[0.5, -1.0, 2.0], [3.0, 1.5, -0.5], [-2.0, 0.0, 1.0]])
HEADER = "Inference-Header-Content-Length"


def triton_input(rows: np.ndarray, datatype: str, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("features", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor


def post(
    client: TestClient,
    path: str,
    inputs: list[triton.InferInput],
    outputs: list[triton.InferRequestedOutput] | None = None,
    **parameters: Any,
) -> Any:
    """POST a body built by tritonclient; returns tritonclient's parsed InferResult."""
    body, json_size = triton.InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, parameters=parameters or None
    )
    headers = {"content-type": "application/octet-stream"}
    if json_size is not None:
        headers[HEADER] = str(json_size)
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == 200, response.text
    length = response.headers.get(HEADER)
    return triton.InferenceServerClient.parse_response_body(
        response.content, header_length=None if length is None else int(length)
    )


def json_outputs(client: TestClient, path: str, **parameters: Any) -> dict[str, np.ndarray]:
    request = {
        "inputs": [
            {"name": "features", "shape": [3, 3], "datatype": "FP64", "data": ROWS.tolist()}
        ],
        "parameters": parameters,
    }
    body = client.post(path, json=request).json()
    return {
        out["name"]: np.asarray(
            out["data"], dtype=np.float32 if out["datatype"] == "FP32" else object
        ).reshape(out["shape"])
        for out in body["outputs"]
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8, np.float16])
def test_binary_inputs_of_any_numeric_type(client: TestClient, dtype: type) -> None:
    rows = np.asarray([[1, 2, 3], [4, 5, 6]], dtype=dtype)
    datatype = np_to_triton_dtype(rows.dtype)
    result = post(client, "/v2/models/toyreg/infer", [triton_input(rows, datatype)])
    v1 = client.post("/v1/models/toyreg/predict", json={"instances": rows.tolist()}).json()
    expected = np.asarray(v1["predictions"]).astype(np.float32)
    np.testing.assert_array_equal(result.as_numpy("prediction"), expected)
    # No `outputs` named: tritonclient asks for every output as binary data.
    output = result.get_output("prediction")
    assert output["parameters"] == {"binary_data_size": expected.nbytes}
    assert "data" not in output


@pytest.mark.parametrize("mode", ["predict", "uncertainty"])
@pytest.mark.parametrize("model", ["toyreg", "toycls"])
def test_binary_and_json_answers_are_equal(client: TestClient, model: str, mode: str) -> None:
    path = f"/v2/models/{model}/infer"
    params = {"mode": mode} if mode == "predict" else {"mode": mode, "samples": 64, "seed": 3}
    expected = json_outputs(client, path, **params)
    result = post(client, path, [triton_input(ROWS.astype(np.float32), "FP32")], **params)
    assert [out["name"] for out in result.get_response()["outputs"]] == list(expected)
    for name, values in expected.items():
        got = result.as_numpy(name)
        if name == "label":  # BYTES: 4-byte length then the UTF-8 label
            assert [label.decode() for label in got] == values.tolist()
        else:
            np.testing.assert_array_equal(got, values, err_msg=name)
    assert result.get_response()["parameters"]["mode"] == mode


def test_per_output_binary_data_overrides_the_request_default(client: TestClient) -> None:
    outputs = [
        triton.InferRequestedOutput("label", binary_data=False),
        triton.InferRequestedOutput("probabilities", binary_data=True),
    ]
    result = post(
        client, "/v2/models/toycls/infer", [triton_input(ROWS, "FP64", binary=False)], outputs
    )
    label, probabilities = result.get_response()["outputs"]
    assert label["name"] == "label"
    assert "parameters" not in label
    assert len(label["data"]) == 3
    assert probabilities["parameters"] == {"binary_data_size": 3 * 3 * 4}
    assert result.as_numpy("probabilities").shape == (3, 3)


def test_a_json_only_exchange_has_no_header_length(client: TestClient) -> None:
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [triton_input(ROWS, "FP64", binary=False)],
        outputs=[triton.InferRequestedOutput("prediction", binary_data=False)],
    )
    assert json_size is None
    response = client.post("/v2/models/toyreg/infer", content=body)  # no content type at all
    assert response.status_code == 200, response.text
    assert HEADER.lower() not in response.headers
    assert response.headers["content-type"] == "application/json"


def test_binary_draws_have_the_batch_first(client: TestClient) -> None:
    result = post(
        client,
        "/v2/models/toyreg/infer",
        [triton_input(ROWS, "FP64")],
        [triton.InferRequestedOutput("draws"), triton.InferRequestedOutput("mean")],
        mode="uncertainty",
        samples=16,
        seed=2,
    )
    draws = result.as_numpy("draws")
    assert draws.shape == (3, 16, 2)
    # The mean output is the mean of these very passes (computed in float64, sent as FP32).
    np.testing.assert_allclose(
        draws.astype(np.float64).mean(axis=1), result.as_numpy("mean"), rtol=1e-5
    )


@pytest.fixture(scope="module")
def small_body_client(toy_models_dir: Path) -> Iterator[TestClient]:
    yield from make_client(toy_models_dir, max_body_bytes=2048)


def test_size_limit_applies_to_binary_bodies(small_body_client: TestClient) -> None:
    rows = np.zeros((100, 3), dtype=np.float64)  # 2400 bytes of tensor data
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [triton_input(rows, "FP64")]
    )
    response = small_body_client.post(
        "/v2/models/toyreg/infer",
        content=body,
        headers={HEADER: str(json_size), "content-type": "application/octet-stream"},
    )
    assert response.status_code == 413
    assert "exceeds the limit of 2048 bytes" in response.json()["error"]
