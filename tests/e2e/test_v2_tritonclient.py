"""The real `tritonclient` against a real `dropserve serve`: the Open Inference Protocol end to end,
with answers equal to the JSON API's for the same rows and seed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from service.api.v2.schemas import InferenceRequest
from tests.e2e.conftest import Server

CONCRETE_ROWS = [
    [540.0, 0.0, 0.0, 162.0, 2.5, 1040.0, 676.0, 28.0],
    [332.5, 142.5, 0.0, 228.0, 0.0, 932.0, 594.0, 270.0],
    [198.6, 132.4, 0.0, 192.0, 0.0, 978.4, 825.5, 90.0],
]
DIGITS_ROWS = [[float((i * 7 + j) % 17) for j in range(64)] for i in range(4)]
ROWS = {"concrete": CONCRETE_ROWS, "digits": DIGITS_ROWS}
OUTPUTS = {
    ("concrete", "predict"): ["prediction"],
    ("digits", "predict"): ["probabilities", "label"],
    ("concrete", "uncertainty"): [
        "mean",
        "variance",
        "std",
        "epistemic_variance",
        "aleatoric_variance",
        "lower",
        "upper",
    ],
    ("digits", "uncertainty"): [
        "probabilities",
        "variance",
        "std",
        "predictive_entropy",
        "expected_entropy",
        "mutual_information",
        "label",
    ],
}
SAMPLES, SEED = 200, 7


@pytest.fixture(scope="module")
def triton_client(server: Server) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=server.base_url.removeprefix("http://"))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60.0) as client:
        yield client


def v1_answer(http: httpx.Client, model: str, mode: str) -> dict[str, np.ndarray]:
    """The JSON API's answer as the protocol's tensors: FP32 values, labels as strings."""
    rows = ROWS[model]
    if mode == "predict":
        body = http.post(f"/v1/models/{model}/predict", json={"instances": rows}).json()
        if model == "concrete":
            return {"prediction": np.asarray(body["predictions"]).astype(np.float32)}
        per_row = body["predictions"]
    else:
        request = {"instances": rows, "samples": SAMPLES, "seed": SEED}
        body = http.post(f"/v1/models/{model}/uncertainty", json=request).json()
        per_row = body["predictions"]
    answer = {}
    for name in OUTPUTS[model, mode]:
        values = [row[name] for row in per_row]
        dtype: Any = object if name == "label" else np.float64
        answer[name] = np.asarray(values, dtype=dtype)
        if name != "label":
            answer[name] = answer[name].astype(np.float32)
    return answer


def test_health_and_readiness(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready("concrete")
    assert triton_client.is_model_ready("digits", "1")
    assert not triton_client.is_model_ready("nope")
    assert not triton_client.is_model_ready("concrete", "99")


def test_server_metadata(triton_client: triton.InferenceServerClient) -> None:
    metadata = triton_client.get_server_metadata()
    assert metadata["name"] == "dropserve"
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata(triton_client: triton.InferenceServerClient) -> None:
    concrete = triton_client.get_model_metadata("concrete")
    assert concrete["versions"] == ["1"]
    assert concrete["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 8]}]
    outputs = {out["name"]: (out["datatype"], out["shape"]) for out in concrete["outputs"]}
    assert outputs["prediction"] == ("FP32", [-1, 1])
    assert outputs["lower"] == ("FP32", [-1, 1])
    digits = triton_client.get_model_metadata("digits", "1")
    assert digits["inputs"][0]["shape"] == [-1, 64]
    outputs = {out["name"]: (out["datatype"], out["shape"]) for out in digits["outputs"]}
    assert outputs["probabilities"] == ("FP32", [-1, 10])
    assert outputs["label"] == ("BYTES", [-1])
    assert outputs["mutual_information"] == ("FP32", [-1])


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("mode", ["predict", "uncertainty"])
@pytest.mark.parametrize("model", ["concrete", "digits"])
def test_infer_equals_the_json_api(
    triton_client: triton.InferenceServerClient,
    http: httpx.Client,
    model: str,
    mode: str,
    binary: bool,
) -> None:
    rows = np.asarray(ROWS[model], dtype=np.float32)
    features = triton.InferInput("features", list(rows.shape), "FP32")
    features.set_data_from_numpy(rows, binary_data=binary)
    names = OUTPUTS[model, mode]
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in names]
    params = (
        {"mode": mode} if mode == "predict" else {"mode": mode, "samples": SAMPLES, "seed": SEED}
    )
    result = triton_client.infer(
        model, [features], outputs=outputs, parameters=params, request_id="e2e"
    )
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        model,
        "1",
        "e2e",
    )
    assert response["parameters"]["mode"] == mode
    if mode == "uncertainty":
        assert (response["parameters"]["samples"], response["parameters"]["seed"]) == (
            SAMPLES,
            SEED,
        )
    expected = v1_answer(http, model, mode)
    for name in names:
        got = result.as_numpy(name)
        assert got.shape[0] == len(rows), name
        if name == "label":
            labels = [v.decode() if isinstance(v, bytes) else v for v in got.tolist()]
            assert labels == expected[name].tolist()
        else:
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, expected[name], err_msg=name)


def test_default_outputs_come_back_as_binary(triton_client: triton.InferenceServerClient) -> None:
    rows = np.asarray(CONCRETE_ROWS, dtype=np.float64)
    features = triton.InferInput("features", list(rows.shape), "FP64")
    features.set_data_from_numpy(rows)
    result = triton_client.infer("concrete", [features], model_version="1")
    (output,) = result.get_response()["outputs"]
    assert output["parameters"] == {"binary_data_size": 3 * 4}
    assert result.as_numpy("prediction").shape == (3, 1)


def test_malformed_request_raises_with_the_servers_message(
    triton_client: triton.InferenceServerClient,
) -> None:
    rows = np.ones((2, 7), dtype=np.float32)
    features = triton.InferInput("features", [2, 7], "FP32")
    features.set_data_from_numpy(rows)
    with pytest.raises(InferenceServerException) as caught:
        triton_client.infer("concrete", [features])
    assert caught.value.status() == "400"
    assert caught.value.message() == (
        "instances[0] has 7 values but the model expects 8 features in this order: cement, "
        "slag, fly_ash, water, superplasticizer, coarse_aggregate, fine_aggregate, age"
    )


@pytest.mark.parametrize(
    ("model", "parameters", "status", "needle"),
    [
        ("nope", {}, "404", "model 'nope' is not loaded; loaded models: concrete, digits"),
        ("concrete", {"mode": "uncertainty", "samples": 0}, "400", "'parameters.samples'"),
        ("concrete", {"mode": "sideways"}, "400", "'parameters.mode': Input should be"),
    ],
)
def test_errors_reach_the_client_as_inference_server_exceptions(
    triton_client: triton.InferenceServerClient,
    model: str,
    parameters: dict[str, Any],
    status: str,
    needle: str,
) -> None:
    features = triton.InferInput("features", [1, 8], "FP32")
    features.set_data_from_numpy(np.asarray(CONCRETE_ROWS[:1], dtype=np.float32))
    with pytest.raises(InferenceServerException) as caught:
        triton_client.infer(model, [features], parameters=parameters or None)
    assert caught.value.status() == status
    assert needle in caught.value.message()


def test_documented_examples_work_on_concrete(http: httpx.Client) -> None:
    for example in InferenceRequest.model_json_schema()["examples"]:
        response = http.post("/v2/models/concrete/infer", json=example)
        assert response.status_code == 200, response.text
        names = [out["name"] for out in response.json()["outputs"]]
        assert names == [out["name"] for out in example.get("outputs", [{"name": "prediction"}])]
