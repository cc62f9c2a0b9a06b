"""Admin endpoints: bearer-token auth, hot reload, load and unload, bundle integrity on reload."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from service.api import create_app
from service.bundle import Bundle
from service.config import Settings
from service.engines import DeterministicEngine, StochasticEngine, build_engines
from tests.factories import make_bundle
from tests.integration.conftest import make_client, wait_ready

TOKEN = "s3cret-admin-token-value"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROW = {"instances": [[1.0, 2.0, 3.0]]}


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    make_bundle(tmp_path, name="alpha", seed=1)
    make_bundle(tmp_path, name="beta", task="classification", seed=2)
    return tmp_path


@pytest.fixture
def admin(models_dir: Path) -> Iterator[TestClient]:
    # No watching: each test changes the folder and checks what its own reload reports.
    yield from make_client(models_dir, admin_token=TOKEN, watch_s=0)


def test_admin_is_disabled_without_a_token(models_dir: Path) -> None:
    for client in make_client(models_dir):
        response = client.post("/admin/reload")
        assert response.status_code == 403
        assert "set DROPSERVE_ADMIN_TOKEN" in response.json()["error"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}],
)
def test_admin_refuses_missing_or_wrong_tokens(admin: TestClient, headers: dict[str, str]) -> None:
    response = admin.post("/admin/reload", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["error"]


def test_the_token_never_reaches_the_logs(
    admin: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin.post("/admin/reload", headers={"Authorization": "Bearer wrong-guess-1234"})
    admin.post("/admin/reload", headers=AUTH)
    assert TOKEN not in caplog.text
    assert "wrong-guess-1234" not in caplog.text


def test_reload_picks_up_a_new_version(admin: TestClient, models_dir: Path) -> None:
    before = admin.post("/v1/models/alpha/predict", json=ROW).json()
    make_bundle(models_dir, name="alpha", seed=9)
    response = admin.post("/admin/reload", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["loaded"] == ["alpha/2"]
    assert set(body["kept"]) == {"alpha/1", "beta/1"}
    after = admin.post("/v1/models/alpha/predict", json=ROW).json()
    assert (before["version"], after["version"]) == (1, 2)
    assert after["predictions"] != before["predictions"]
    pinned = admin.post("/v1/models/alpha/versions/1/predict", json=ROW).json()
    assert pinned["predictions"] == before["predictions"]


def test_a_broken_new_version_leaves_the_old_one_serving(
    admin: TestClient, models_dir: Path
) -> None:
    broken = make_bundle(models_dir, name="alpha", seed=9)
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    response = admin.post("/admin/reload", headers=AUTH)
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "failed"
    assert "model.onnx: sha256 mismatch" in body["failed"][str(broken)]
    served = admin.post("/v1/models/alpha/predict", json=ROW)
    assert served.status_code == 200
    assert served.json()["version"] == 1
    ready = admin.get("/health/ready").json()
    assert str(broken) in ready["failed"]


def test_corrupting_a_serving_bundle_keeps_it_serving_from_memory(
    admin: TestClient, models_dir: Path
) -> None:
    weights = models_dir / "alpha" / "1" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    response = admin.post("/admin/reload", headers=AUTH)
    assert response.status_code == 422
    assert "weights.safetensors: sha256 mismatch" in response.json()["failed"][str(weights.parent)]
    assert admin.post("/v1/models/alpha/uncertainty", json={**ROW, "samples": 10}).is_success


def test_a_bad_manifest_is_reported_by_file(admin: TestClient, models_dir: Path) -> None:
    bundle = make_bundle(models_dir, name="alpha", seed=4)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["architecture"]["dropout"] = [1.5]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    body = admin.post("/admin/reload", headers=AUTH).json()
    assert "manifest.json: invalid manifest: architecture.dropout.0" in body["failed"][str(bundle)]


def test_removed_versions_are_unloaded(admin: TestClient, models_dir: Path) -> None:
    shutil.rmtree(models_dir / "beta")
    body = admin.post("/admin/reload", headers=AUTH).json()
    assert body["unloaded"] == ["beta/1"]
    assert admin.post("/v1/models/beta/predict", json=ROW).status_code == 404


def test_unload_and_load_one_model(admin: TestClient) -> None:
    response = admin.post("/admin/models/beta/unload", headers=AUTH)
    assert response.json() == {"status": "unloaded", "model": "beta", "versions": [1]}
    assert admin.post("/v1/models/beta/predict", json=ROW).status_code == 404
    # A full reload does not bring back a model unloaded on purpose...
    assert "beta/1" not in admin.post("/admin/reload", headers=AUTH).json()["loaded"]
    assert admin.post("/v1/models/beta/predict", json=ROW).status_code == 404
    # ...loading it by name does.
    loaded = admin.post("/admin/models/beta/load", headers=AUTH)
    assert loaded.status_code == 200
    assert loaded.json()["loaded"] == ["beta/1"]
    assert admin.post("/v1/models/beta/predict", json=ROW).status_code == 200


def test_load_and_unload_unknown_models(admin: TestClient) -> None:
    assert admin.post("/admin/models/gamma/load", headers=AUTH).status_code == 404
    assert admin.post("/admin/models/gamma/unload", headers=AUTH).status_code == 404


def post_within(client: TestClient, url: str, seconds: float = 15.0) -> httpx.Response:
    """POST on a thread, so that a request that never returns fails the test, not hangs it."""
    answers: list[httpx.Response] = []
    thread = threading.Thread(
        target=lambda: answers.append(client.post(url, headers=AUTH)), daemon=True
    )
    thread.start()
    thread.join(seconds)
    assert answers, f"POST {url} did not answer within {seconds} s"
    return answers[0]


def test_a_fifo_in_a_new_version_fails_the_reload_instead_of_hanging_it(
    admin: TestClient, models_dir: Path
) -> None:
    bundle = make_bundle(models_dir, name="alpha", seed=9)
    (bundle / "model.onnx").unlink()
    os.mkfifo(bundle / "model.onnx")
    try:
        response = post_within(admin, "/admin/reload")
        assert response.status_code == 422
        assert (
            "model.onnx: file listed in the manifest is a FIFO"
            in (response.json()["failed"][str(bundle)])
        )
        assert post_within(admin, "/admin/reload").status_code == 422  # the next one too
        assert admin.post("/v1/models/alpha/predict", json=ROW).json()["version"] == 1
    finally:
        with contextlib.suppress(OSError):  # wakes a reader blocked on the FIFO, if any
            os.close(os.open(bundle / "model.onnx", os.O_WRONLY | os.O_NONBLOCK))


def test_an_unsigned_edit_of_a_serving_manifest_keeps_both_modes_agreeing(
    admin: TestClient, models_dir: Path
) -> None:
    manifest_path = models_dir / "alpha" / "1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["normalization"]["feature_mean"][0] += 10.0
    manifest_path.write_text(json.dumps(manifest))
    response = admin.post("/admin/reload", headers=AUTH)
    assert response.status_code == 422
    assert "does not match its digest" in response.json()["failed"][str(manifest_path.parent)]
    (predicted,) = admin.post("/v1/models/alpha/predict", json=ROW).json()["predictions"][0]
    body = {**ROW, "samples": 2000, "seed": 3}
    sampled = admin.post("/v1/models/alpha/uncertainty", json=body).json()["predictions"][0]
    # Within the MC error of a 2000-pass mean; the edited statistics would move it far more.
    assert sampled["mean"][0] == pytest.approx(predicted, abs=0.5 * max(1.0, abs(predicted)))


class GatedEngines:
    """The real engines, except that building those of `blocked` waits for `release`."""

    def __init__(self, blocked: str) -> None:
        self.blocked = blocked
        self.release = threading.Event()

    def __call__(
        self, bundle: Bundle, device: torch.device, settings: Settings
    ) -> tuple[DeterministicEngine, StochasticEngine]:
        if bundle.manifest.name == self.blocked:
            self.release.wait()
        return build_engines(bundle, device, settings)


def test_a_load_that_never_ends_times_out_and_frees_the_registry(models_dir: Path) -> None:
    engines = GatedEngines(blocked="gamma")
    settings = Settings(
        models_dir=models_dir,
        warmup_rounds=1,
        admin_token=TOKEN,
        bundle_load_timeout_s=1.0,
        watch_s=0,  # the reloads this test asks for are the only ones
    )
    gamma = make_bundle(models_dir, name="gamma", seed=5)
    try:
        with TestClient(create_app(settings, engines=engines)) as client:
            wait_ready(client)
            assert "longer than" in client.get("/health/ready").json()["failed"][str(gamma)]
            assert client.post("/v1/models/alpha/predict", json=ROW).status_code == 200
            again = post_within(client, "/admin/reload").json()
            assert "has not finished" in again["failed"][str(gamma)]  # no second stuck thread
            assert set(again["kept"]) == {"alpha/1", "beta/1"}
            unloaded = post_within(client, "/admin/models/beta/unload")  # the lock is free
            assert unloaded.json()["status"] == "unloaded"
            engines.release.set()
            for _ in range(50):  # the abandoned load finishes; its result was dropped
                if not any(t.name == f"load {gamma}" for t in threading.enumerate()):
                    break
                time.sleep(0.1)
            assert post_within(client, "/admin/reload").json()["loaded"] == ["gamma/1"]
    finally:
        engines.release.set()
