"""Open Inference Protocol inference with JSON tensor data: both modes equal the JSON API's."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

ROWS = [[0.5, -1.0, 2.0], [3.0, 1.5, -0.5], [-2.0, 0.0, 1.0]]
REGRESSION_MC = ["mean", "variance", "std", "epistemic_variance", "aleatoric_variance"]
REGRESSION_MC += ["lower", "upper"]
CLASS_MC = ["probabilities", "variance", "std", "predictive_entropy", "expected_entropy"]
CLASS_MC += ["mutual_information", "label"]


def features(rows: Any = ROWS, datatype: str = "FP32", shape: list[int] | None = None) -> Any:
    return {
        "name": "features",
        "shape": shape or [len(ROWS), 3],
        "datatype": datatype,
        "data": rows,
    }


def infer(client: TestClient, path: str, **body: Any) -> dict[str, Any]:
    body.setdefault("inputs", [features()])
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    result: dict[str, Any] = response.json()
    return result


def tensors(body: dict[str, Any]) -> dict[str, np.ndarray]:
    """Output name -> array of the declared shape (JSON tensor data)."""
    arrays = {}
    for out in body["outputs"]:
        dtype = np.float32 if out["datatype"] == "FP32" else object
        arrays[out["name"]] = np.asarray(out["data"], dtype=dtype).reshape(out["shape"])
    return arrays


def fp32(values: Any) -> np.ndarray:
    """The JSON API's float64 values as the FP32 the protocol sends."""
    return np.asarray(values, dtype=np.float64).astype(np.float32)


def test_regression_prediction_equals_the_json_api(client: TestClient) -> None:
    body = infer(client, "/v2/models/toyreg/versions/1/infer")
    assert (body["model_name"], body["model_version"]) == ("toyreg", "1")
    assert body["parameters"] == {"mode": "predict"}
    assert "id" not in body
    v1 = client.post("/v1/models/toyreg/versions/1/predict", json={"instances": ROWS}).json()
    (out,) = body["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("prediction", "FP32", [3, 1])
    np.testing.assert_array_equal(tensors(body)["prediction"], fp32(v1["predictions"]))


def test_unversioned_infer_uses_the_newest_version(client: TestClient) -> None:
    body = infer(client, "/v2/models/toyreg/infer")
    assert body["model_version"] == "2"
    assert tensors(body)["prediction"].shape == (3, 2)


@pytest.mark.parametrize(
    ("data", "datatype"),
    [
        ([v for row in ROWS for v in row], "FP32"),
        (ROWS, "FP64"),
        ([ROWS[:2], ROWS[2:]], "FP32"),  # any nesting, read row-major
    ],
)
def test_flat_and_nested_data_and_fp64_give_the_same_answer(
    client: TestClient, data: Any, datatype: str
) -> None:
    reference = infer(client, "/v2/models/toyreg/infer")
    body = infer(client, "/v2/models/toyreg/infer", inputs=[features(data, datatype)])
    assert body["outputs"] == reference["outputs"]


@pytest.mark.parametrize("datatype", ["INT8", "INT32", "INT64", "UINT16", "FP16"])
def test_other_numeric_types_are_coerced_to_float(client: TestClient, datatype: str) -> None:
    rows = [[1, 2, 3], [4, 5, 6]]
    body = infer(client, "/v2/models/toyreg/infer", inputs=[features(rows, datatype, [2, 3])])
    v1 = client.post("/v1/models/toyreg/predict", json={"instances": rows}).json()
    np.testing.assert_array_equal(tensors(body)["prediction"], fp32(v1["predictions"]))


def test_classification_prediction_has_probabilities_and_label(client: TestClient) -> None:
    body = infer(client, "/v2/models/toycls/infer", id="req-7")
    assert body["id"] == "req-7"
    assert [out["name"] for out in body["outputs"]] == ["probabilities", "label"]
    v1 = client.post("/v1/models/toycls/predict", json={"instances": ROWS}).json()["predictions"]
    got = tensors(body)
    np.testing.assert_array_equal(got["probabilities"], fp32([r["probabilities"] for r in v1]))
    assert got["label"].tolist() == [r["label"] for r in v1]
    assert body["outputs"][1]["datatype"] == "BYTES"


def test_regression_uncertainty_equals_the_json_api(client: TestClient) -> None:
    params = {"mode": "uncertainty", "samples": 300, "seed": 5, "interval": 0.9}
    body = infer(client, "/v2/models/toyreg/infer", parameters=params)
    assert [out["name"] for out in body["outputs"]] == REGRESSION_MC
    request = {"instances": ROWS, "samples": 300, "seed": 5, "interval": 0.9}
    v1_body = client.post("/v1/models/toyreg/uncertainty", json=request).json()
    assert body["parameters"] == {
        **params,
        "device": v1_body["device"],
        "precision": v1_body["precision"],
    }
    v1 = v1_body["predictions"]
    got = tensors(body)
    for name in REGRESSION_MC:
        assert got[name].shape == (3, 2)
        np.testing.assert_array_equal(got[name], fp32([row[name] for row in v1]), err_msg=name)


def test_classification_uncertainty_equals_the_json_api(client: TestClient) -> None:
    params = {"mode": "uncertainty", "samples": 200, "seed": 9}
    body = infer(client, "/v2/models/toycls/infer", parameters=params)
    assert [out["name"] for out in body["outputs"]] == CLASS_MC
    v1_body = client.post(
        "/v1/models/toycls/uncertainty", json={"instances": ROWS, "samples": 200, "seed": 9}
    ).json()
    echoed = {**params, "device": v1_body["device"], "precision": v1_body["precision"]}
    assert body["parameters"] == echoed  # no interval
    v1 = v1_body["predictions"]
    got = tensors(body)
    assert got["label"].tolist() == [row["label"] for row in v1]
    for name in CLASS_MC[:-1]:
        np.testing.assert_array_equal(got[name], fp32([row[name] for row in v1]), err_msg=name)
    assert got["predictive_entropy"].shape == (3,)


def test_outputs_select_and_order_the_tensors(client: TestClient) -> None:
    params = {"mode": "uncertainty", "samples": 50, "seed": 1}
    outputs = [{"name": "upper"}, {"name": "mean"}]
    body = infer(client, "/v2/models/toyreg/infer", parameters=params, outputs=outputs)
    assert [out["name"] for out in body["outputs"]] == ["upper", "mean"]
    full = tensors(infer(client, "/v2/models/toyreg/infer", parameters=params))
    np.testing.assert_array_equal(tensors(body)["upper"], full["upper"])


def test_draws_are_the_json_api_samples_with_the_batch_first(client: TestClient) -> None:
    params = {"mode": "uncertainty", "samples": 20, "seed": 4}
    body = infer(client, "/v2/models/toyreg/infer", parameters=params, outputs=[{"name": "draws"}])
    (out,) = body["outputs"]
    assert out["shape"] == [3, 20, 2]
    request = {"instances": ROWS, "samples": 20, "seed": 4, "return_samples": True}
    v1 = client.post("/v1/models/toyreg/uncertainty", json=request).json()["predictions"]
    np.testing.assert_array_equal(tensors(body)["draws"], fp32([row["samples"] for row in v1]))


def test_an_unseeded_answer_can_be_replayed_from_the_echoed_seed(client: TestClient) -> None:
    first = infer(client, "/v2/models/toycls/infer", parameters={"mode": "uncertainty"})
    seed = first["parameters"]["seed"]
    assert isinstance(seed, int)
    assert first["parameters"]["samples"] == 100  # the server's default T
    again = infer(
        client, "/v2/models/toycls/infer", parameters={"mode": "uncertainty", "seed": seed}
    )
    assert again["outputs"] == first["outputs"]


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress)],
)
def test_compressed_request_bodies(client: TestClient, encoding: str, compress: Any) -> None:
    plain = infer(client, "/v2/models/toyreg/infer")
    body = compress(
        b'{"inputs": [{"name": "features", "shape": [3, 3], "datatype": "FP32", '
        + f'"data": {ROWS}}}]}}'.encode()
    )
    response = client.post(
        "/v2/models/toyreg/infer", content=body, headers={"content-encoding": encoding}
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == plain["outputs"]
