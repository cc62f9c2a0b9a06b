"""Process lifecycle of a real server: graceful SIGTERM, draining readiness, SIGHUP reload."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from service.bundle.digest import compute_digest
from tests.e2e.conftest import MODELS_DIR, poll_until_ready, start_server, stop_server

HEAVY = {
    "instances": [[float((i + j) % 16) for j in range(64)] for i in range(200)],
    "samples": 10_000,
    "seed": 0,
}


def test_sigterm_lets_the_running_request_finish_and_exits_0(tmp_path: Path) -> None:
    env = {"DROPSERVE_DEVICE": "cpu", "DROPSERVE_DRAIN_DELAY_S": "1.0"}
    server = start_server(tmp_path / "server.log", env)
    try:
        poll_until_ready(server)
        result: dict[str, object] = {}

        def long_request() -> None:
            with httpx.Client(base_url=server.base_url, timeout=120.0) as client:
                response = client.post("/v1/models/digits/uncertainty", json=HEAVY)
                result["status"] = response.status_code
                result["rows"] = len(response.json().get("predictions", []))

        worker = threading.Thread(target=long_request)
        worker.start()
        time.sleep(0.5)  # the heavy request is computing now
        assert worker.is_alive(), "the heavy request finished before SIGTERM; make it heavier"
        server.process.send_signal(signal.SIGTERM)
        with httpx.Client(base_url=server.base_url, timeout=5.0) as probe:
            ready = probe.get("/health/ready")
            live = probe.get("/health/live")
        assert ready.status_code == 503
        assert ready.json()["status"] == "draining"
        assert live.status_code == 200
        worker.join(timeout=120)
        assert result == {"status": 200, "rows": 200}
        assert server.process.wait(timeout=60) == 0
        assert "shutting down: readiness is now 503" in server.log()
    finally:
        stop_server(server)


@pytest.fixture
def models_copy(tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(MODELS_DIR / "concrete", target / "concrete")
    return target


def test_sighup_reloads_the_models_folder(tmp_path: Path, models_copy: Path) -> None:
    # No watching, so the new version can only come from the signal.
    env = {"DROPSERVE_DEVICE": "cpu", "DROPSERVE_WATCH_S": "0"}
    server = start_server(tmp_path / "server.log", env, models_dir=models_copy)
    try:
        poll_until_ready(server)
        # A new version: the same files under version 2, the manifest's version changed to match.
        v2 = models_copy / "concrete" / "2"
        shutil.copytree(models_copy / "concrete" / "1", v2)
        manifest = json.loads((v2 / "manifest.json").read_text())
        manifest["version"] = 2
        manifest["digest"] = compute_digest(manifest)  # the server refuses an unsigned edit
        (v2 / "manifest.json").write_text(json.dumps(manifest))
        server.process.send_signal(signal.SIGHUP)
        with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
            deadline = time.monotonic() + 30
            versions: list[int] = []
            while time.monotonic() < deadline:
                versions = client.get("/v1/models").json()["models"][0]["versions"]
                if versions == [1, 2]:
                    break
                time.sleep(0.05)
            assert versions == [1, 2]
            assert server.process.poll() is None
    finally:
        assert stop_server(server) == 0
