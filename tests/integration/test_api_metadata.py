"""Health, readiness and model metadata endpoints."""

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


def test_live_answers(client: TestClient) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_ready_lists_loaded_models(client: TestClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["models"] == {"toycls": [1], "toyreg": [1, 2]}
    assert body["failed"] == {}


def test_ready_is_503_until_models_are_loaded(
    toy_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    original = ModelRegistry.load_all

    def slow_load_all(self: ModelRegistry, pinned: ModelSet | None = None) -> None:
        release.wait(timeout=30)
        original(self, pinned)

    monkeypatch.setattr(ModelRegistry, "load_all", slow_load_all)
    with TestClient(create_app(Settings(models_dir=toy_models_dir, warmup_rounds=0))) as client:
        assert client.get("/health/live").status_code == 200
        not_ready = client.get("/health/ready")
        assert not_ready.status_code == 503
        assert not_ready.json()["status"] == "loading"
        early = client.post("/v1/models/toyreg/predict", json={"instances": [[1, 2, 3]]})
        assert early.status_code == 503
        assert early.headers["retry-after"] == "1"
        assert "still loading" in early.json()["error"]
        release.set()
        wait_ready(client)
        assert client.post("/v1/models/toyreg/predict", json={"instances": [[1, 2, 3]]}).is_success


def test_ready_is_503_when_no_model_loads(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(models_dir=tmp_path))) as client:
        for _ in range(200):
            body = client.get("/health/ready").json()
            if body["status"] != "loading":
                break
        response = client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["status"] == "not_ready"


def test_list_models(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    by_name = {m["name"]: m for m in body["models"]}
    assert set(by_name) == {"toyreg", "toycls"}
    assert by_name["toyreg"]["versions"] == [1, 2]
    assert by_name["toyreg"]["latest"] == 2
    assert by_name["toycls"]["task"] == "classification"


def test_model_detail_is_the_public_manifest(client: TestClient) -> None:
    body = client.get("/v1/models/toyreg").json()
    assert body["version"] == 2
    assert body["versions"] == [1, 2]
    assert body["features"] == ["x0", "x1", "x2"]
    assert body["outputs"] == ["y0", "y1"]
    assert body["tau"] == [4.0, 4.0]
    assert body["architecture"]["input_dropout"] == pytest.approx(0.1)
    assert body["limits"]["max_samples"] == 5000
    assert body["limits"]["max_rows"] == 50
    assert body["device"] == "cpu"
    assert "normalization" not in body
    assert "files" not in body


def test_model_version_detail(client: TestClient) -> None:
    body = client.get("/v1/models/toyreg/versions/1").json()
    assert body["version"] == 1
    assert body["outputs"] == ["y0"]
    classes = client.get("/v1/models/toycls").json()
    assert classes["classes"] == ["setosa", "versicolor", "virginica"]
    assert classes["architecture"]["style"] == "classic"
    assert classes["tau"] is None


def test_openapi_has_working_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert "/v1/models/{name}/predict" in paths
    assert "/v1/models/{name}/uncertainty" in paths
    examples = spec["components"]["schemas"]["UncertaintyRequest"]["examples"]
    assert examples[0]["samples"] == 200
    assert client.get("/docs").status_code == 200
