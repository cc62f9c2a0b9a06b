"""Open Inference Protocol: server and model metadata, liveness and readiness under /v2."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from service.dataplane.model_set import ModelSet
from service.dataplane.registry import ModelRegistry
from tests.integration.conftest import wait_ready

REGRESSION_MC = [
    "mean",
    "variance",
    "std",
    "epistemic_variance",
    "aleatoric_variance",
    "lower",
    "upper",
]


def error_of(response: object, status: int) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]  # type: ignore[attr-defined]
    message: str = body["error"]
    return message


@pytest.mark.parametrize("path", ["/v2", "/v2/"])
def test_server_metadata_advertises_binary_tensor_data(client: TestClient, path: str) -> None:
    body = client.get(path).json()
    assert body["name"] == "dropserve"
    assert body["version"] == "0.1.0"
    assert "binary_tensor_data" in body["extensions"]
    assert "mc_dropout_uncertainty" in body["extensions"]


def test_live_and_ready(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True}


def test_regression_metadata_has_features_and_the_outputs_of_both_modes(
    client: TestClient,
) -> None:
    body = client.get("/v2/models/toyreg").json()
    assert (body["name"], body["versions"], body["platform"]) == ("toyreg", ["1", "2"], "dropserve")
    assert body["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 3]}]
    # The newest version has two outputs.
    expected = [{"name": "prediction", "datatype": "FP32", "shape": [-1, 2]}]
    expected += [{"name": n, "datatype": "FP32", "shape": [-1, 2]} for n in REGRESSION_MC]
    expected.append({"name": "draws", "datatype": "FP32", "shape": [-1, -1, 2]})
    assert body["outputs"] == expected


def test_versioned_metadata_describes_that_version(client: TestClient) -> None:
    body = client.get("/v2/models/toyreg/versions/1").json()
    assert body["versions"] == ["1", "2"]
    assert {tuple(out["shape"]) for out in body["outputs"] if out["name"] != "draws"} == {(-1, 1)}


def test_classification_metadata(client: TestClient) -> None:
    body = client.get("/v2/models/toycls").json()
    outputs = {out["name"]: (out["datatype"], out["shape"]) for out in body["outputs"]}
    assert outputs == {
        "probabilities": ("FP32", [-1, 3]),
        "label": ("BYTES", [-1]),
        "variance": ("FP32", [-1, 3]),
        "std": ("FP32", [-1, 3]),
        "predictive_entropy": ("FP32", [-1]),
        "expected_entropy": ("FP32", [-1]),
        "mutual_information": ("FP32", [-1]),
        "draws": ("FP32", [-1, -1, 3]),
    }


@pytest.mark.parametrize("path", ["/v2/models/toyreg/ready", "/v2/models/toyreg/versions/1/ready"])
def test_model_ready(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"name": "toyreg", "ready": True}


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/v2/models/nope", "model 'nope' is not loaded; loaded models: toycls, toyreg"),
        ("/v2/models/nope/ready", "model 'nope' is not loaded"),
        (
            "/v2/models/toyreg/versions/9",
            "model 'toyreg' has no version 9; available versions: 1, 2",
        ),
        ("/v2/models/toyreg/versions/9/ready", "has no version 9"),
        ("/v2/models/toyreg/versions/v1", "has no version 'v1'; available versions: 1, 2"),
        ("/v2/models/nope/versions/v1/ready", "model 'nope' is not loaded"),
    ],
)
def test_unknown_model_or_version_is_404(client: TestClient, path: str, needle: str) -> None:
    assert needle in error_of(client.get(path), 404)


def test_unknown_v2_route_is_a_json_404(client: TestClient) -> None:
    assert "no route GET /v2/nothing" in error_of(client.get("/v2/nothing"), 404)


def test_everything_is_503_until_models_are_loaded(
    toy_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    original = ModelRegistry.load_all

    def slow_load_all(self: ModelRegistry, pinned: ModelSet | None = None) -> None:
        release.wait(timeout=30)
        original(self, pinned)

    monkeypatch.setattr(ModelRegistry, "load_all", slow_load_all)
    request = {
        "inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]
    }
    with TestClient(create_app(Settings(models_dir=toy_models_dir, warmup_rounds=0))) as client:
        assert client.get("/v2/health/live").status_code == 200
        assert "still loading" in error_of(client.get("/v2/health/ready"), 503)
        assert "still loading" in error_of(client.get("/v2/models/toyreg/ready"), 503)
        assert "still loading" in error_of(client.get("/v2/models/toyreg"), 503)
        early = client.post("/v2/models/toyreg/infer", json=request)
        assert "still loading" in error_of(early, 503)
        assert early.headers["retry-after"] == "1"
        release.set()
        wait_ready(client)
        assert client.get("/v2/health/ready").status_code == 200
        assert client.post("/v2/models/toyreg/infer", json=request).is_success


def test_ready_is_503_when_no_model_loads(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(models_dir=tmp_path))) as client:
        for _ in range(200):
            if client.get("/health/ready").json()["status"] != "loading":
                break
        assert "no model is loaded" in error_of(client.get("/v2/health/ready"), 503)


def test_openapi_documents_the_v2_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v2", "/v2/health/ready", "/v2/models/{name}/versions/{version}/infer"} <= set(paths)
    body = paths["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/octet-stream"}
    example = body["application/json"]["schema"]["examples"][1]
    assert example["parameters"]["mode"] == "uncertainty"
    assert "$ref" not in str(body)  # inlined, so it resolves inside the OpenAPI document
