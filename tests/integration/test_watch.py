"""Watching the models folder: versions added, removed, broken or half copied are picked up (or
refused) without an admin call, the way /admin/reload would, and 0 switches it off."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.dataplane.watch import folder_signature
from tests.factories import make_bundle
from tests.integration.conftest import make_client

TOKEN = "watch-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROW = {"instances": [[1.0, 2.0, 3.0]]}
TICK_S = 0.05


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(TICK_S)
    raise AssertionError("the watcher did not act in time")


def versions(client: TestClient, name: str = "alpha") -> list[int]:
    served: dict[str, list[int]] = client.get("/health/ready").json()["models"]
    return served.get(name, [])


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    make_bundle(tmp_path / "models", name="alpha", seed=1)
    return tmp_path / "models"


@pytest.fixture
def watched(models_dir: Path) -> Iterator[TestClient]:
    yield from make_client(models_dir, watch_s=TICK_S, admin_token=TOKEN)


def test_a_new_version_serves_without_an_admin_call(
    watched: TestClient, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="service.dataplane.watch"):
        make_bundle(models_dir, name="alpha", seed=2)
        eventually(lambda: versions(watched) == [1, 2])
    answer = watched.post("/v1/models/alpha/predict", json=ROW)
    assert answer.status_code == 200
    assert answer.json()["version"] == 2
    assert "added: alpha/2" in caplog.text
    assert "dropserve_model_load_seconds_count 2.0" in watched.get("/metrics").text


def test_a_removed_version_stops_serving(watched: TestClient, models_dir: Path) -> None:
    make_bundle(models_dir, name="alpha", seed=2)
    eventually(lambda: versions(watched) == [1, 2])
    shutil.rmtree(models_dir / "alpha" / "2")
    eventually(lambda: versions(watched) == [1])
    assert watched.post("/v1/models/alpha/versions/2/predict", json=ROW).status_code == 404


def test_a_broken_version_is_reported_and_the_old_keeps_serving(
    watched: TestClient, models_dir: Path
) -> None:
    broken = make_bundle(models_dir, name="alpha", seed=2)
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    eventually(lambda: str(broken) in watched.get("/health/ready").json()["failed"])
    assert versions(watched) == [1]
    answer = watched.post("/v1/models/alpha/predict", json=ROW)
    assert answer.status_code == 200
    assert answer.json()["version"] == 1
    assert "dropserve_model_load_failures_total 1.0" in watched.get("/metrics").text


def test_a_half_copied_version_is_retried_once_its_copy_completes(
    watched: TestClient, models_dir: Path, tmp_path: Path
) -> None:
    # Copied by hand, file by file, into place: the first look finds the graph missing.
    make_bundle(tmp_path / "elsewhere", name="alpha", seed=1)
    source = make_bundle(tmp_path / "elsewhere", name="alpha", seed=2)  # alpha/2, as the target
    target = models_dir / "alpha" / "2"
    target.mkdir()
    shutil.copy(source / "manifest.json", target)
    shutil.copy(source / "weights.safetensors", target)
    eventually(lambda: str(target) in watched.get("/health/ready").json()["failed"])
    assert versions(watched) == [1]
    shutil.copy(source / "model.onnx", target)
    eventually(lambda: versions(watched) == [1, 2])
    assert watched.get("/health/ready").json()["failed"] == {}


def test_a_model_unloaded_by_request_stays_unloaded(watched: TestClient, models_dir: Path) -> None:
    assert watched.post("/admin/models/alpha/unload", headers=AUTH).status_code == 200
    make_bundle(models_dir, name="beta", seed=3)
    eventually(lambda: versions(watched, "beta") == [1])
    make_bundle(models_dir, name="alpha", seed=2)
    make_bundle(models_dir, name="beta", seed=4)
    eventually(lambda: versions(watched, "beta") == [1, 2])
    assert versions(watched) == []


def test_interval_0_does_not_watch(models_dir: Path) -> None:
    for client in make_client(models_dir, watch_s=0):
        make_bundle(models_dir, name="alpha", seed=2)
        time.sleep(0.5)
        assert versions(client) == [1]


def test_the_signature_sees_files_not_staging_folders(models_dir: Path) -> None:
    before = folder_signature(models_dir)
    assert list(before.versions) == ["alpha/1"]
    (models_dir / "alpha" / ".staging-2-abc").mkdir()
    (models_dir / "alpha" / "notes").mkdir()
    assert folder_signature(models_dir) == before
    manifest = models_dir / "alpha" / "1" / "manifest.json"
    stat = manifest.stat()
    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched only
    assert folder_signature(models_dir).changes(before) == ([], [], ["alpha/1"])
    assert folder_signature(models_dir / "missing").versions == {}
