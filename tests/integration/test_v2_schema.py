"""The /v2 bodies validate against the Open Inference Protocol's own OpenAPI schema."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient

from service.api.v2.schemas import InferenceRequest
from tests.oip_schema import oip_validator

ROWS = [[0.5, -1.0, 2.0], [3.0, 1.5, -0.5]]


def assert_valid(component: str, body: Any) -> None:
    errors = [error.message for error in oip_validator(component).iter_errors(body)]
    assert errors == [], f"{component}: {errors}"


def request(parameters: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [{"name": "features", "shape": [2, 3], "datatype": "FP32", "data": ROWS}],
        **extra,
    }
    if parameters is not None:
        body["parameters"] = parameters
    return body


def test_the_validator_rejects_what_the_spec_rejects() -> None:
    validator = oip_validator("inference_response")
    assert not validator.is_valid({"outputs": []})  # model_name is required
    bad_output = {"name": "y", "shape": [1], "datatype": "FP32"}  # data is required
    assert not validator.is_valid({"model_name": "m", "outputs": [bad_output]})
    assert not oip_validator("metadata_tensor").is_valid({"name": "x", "datatype": "FP32"})
    with pytest.raises(KeyError, match="no component"):
        oip_validator("nothing")


def test_server_and_model_metadata(client: TestClient) -> None:
    assert_valid("metadata_server_response", client.get("/v2").json())
    for path in ("/v2/models/toyreg", "/v2/models/toyreg/versions/1", "/v2/models/toycls"):
        assert_valid("metadata_model_response", client.get(path).json())
    assert_valid("metadata_model_error_response", client.get("/v2/models/nope").json())


UNCERTAINTY = {"mode": "uncertainty", "samples": 30, "seed": 2}


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("toyreg", request()),
        ("toycls", request(id="abc", outputs=[{"name": "label"}, {"name": "probabilities"}])),
        ("toyreg", request(UNCERTAINTY)),
        ("toycls", request(UNCERTAINTY)),
        ("toycls", request(UNCERTAINTY, outputs=[{"name": "draws"}])),
    ],
)
def test_inference_request_and_response(
    client: TestClient, model: str, body: dict[str, Any]
) -> None:
    assert_valid("inference_request", body)
    response = client.post(f"/v2/models/{model}/infer", json=body)
    assert response.status_code == 200, response.text
    assert_valid("inference_response", response.json())


def test_error_bodies(client: TestClient) -> None:
    response = client.post("/v2/models/toyreg/infer", json={"inputs": []})
    assert response.status_code == 400
    assert_valid("inference_error_response", response.json())


def test_documented_examples_are_valid_requests() -> None:
    examples = InferenceRequest.model_json_schema()["examples"]
    assert len(examples) == 2
    for example in examples:
        assert_valid("inference_request", example)


def test_a_tritonclient_json_request_is_valid() -> None:
    tensor = triton.InferInput("features", [2, 3], "FP32")
    tensor.set_data_from_numpy(np.asarray(ROWS, dtype=np.float32), binary_data=False)
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [tensor],
        outputs=[triton.InferRequestedOutput("prediction", binary_data=False)],
        parameters={"mode": "predict"},
    )
    assert json_size is None
    assert_valid("inference_request", json.loads(body))
