"""Ray Serve hosting without a cluster: replica settings, the replica header, the CLI's --ray."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from service.cli import main


@pytest.fixture
def ray_serve(requires_ray: None) -> Any:
    """The module (skipped without ray, failed under DROPSERVE_REQUIRE_TOOLS=1, as in CI)."""
    from service.hosting import ray_serve

    return ray_serve


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("DROPSERVE_")]:
        monkeypatch.delenv(key)


@pytest.mark.parametrize(
    ("setting", "gpu_ids", "device"),
    [("auto", [], "cpu"), ("auto", [0], "cuda"), ("cpu", [0], "cpu"), ("cuda:1", [], "cuda:1")],
)
def test_replica_device_follows_the_placement_only_when_auto(
    ray_serve: Any, setting: str, gpu_ids: list[int], device: str
) -> None:
    settings = ray_serve.replica_settings({"device": setting}, gpu_ids)
    assert settings.device == device


def test_replica_settings_take_the_environment_then_the_overrides(
    ray_serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DROPSERVE_DEFAULT_SAMPLES", "50")
    monkeypatch.setenv("DROPSERVE_MAX_ROWS", "10")
    monkeypatch.setenv("DROPSERVE_METRICS_PORT", "9100")
    settings = ray_serve.replica_settings({"max_rows": 20}, [])
    assert (settings.default_samples, settings.max_rows) == (50, 20)
    assert settings.metrics_port == 0, "replicas on one node cannot share a metrics port"


def test_unknown_setting_is_refused_by_name(ray_serve: Any) -> None:
    with pytest.raises(ValueError, match=r"unknown dropserve settings \['model_dir'\]"):
        ray_serve.replica_settings({"model_dir": "/models"}, [])
    with pytest.raises(ValueError, match="model_dir"):
        ray_serve.app_builder({"model_dir": "/models"})


def test_app_builder_binds_the_deployment_with_the_args(ray_serve: Any) -> None:
    from ray.serve import Application

    application = ray_serve.app_builder({"device": "cpu"})
    assert isinstance(application, Application)


def _echo_app(ray_serve: Any) -> TestClient:
    async def echo(request: Request) -> PlainTextResponse:
        # What the app does: echo the request id it was given.
        return PlainTextResponse("ok", headers={"X-Request-ID": request.headers["x-request-id"]})

    app = Starlette(routes=[Route("/", echo)])
    app.add_middleware(ray_serve.ReplicaHeaderMiddleware, replica="r1")
    return TestClient(app)


def test_replica_header_names_the_replica_and_leaves_one_request_id(ray_serve: Any) -> None:
    answer = _echo_app(ray_serve).get("/", headers={"X-Request-ID": "abc"})
    assert answer.headers["X-Dropserve-Replica"] == "r1"
    # Ray's proxy appends the same id after the replica: the app's copy is dropped.
    assert answer.headers.get_list("X-Request-ID") == []


def test_cli_ray_without_ray_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service import hosting

    # `import ray` fails as if ray were not installed, and the Ray host module is imported anew.
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "service.hosting.ray_serve", raising=False)
    monkeypatch.delattr(hosting, "ray_serve", raising=False)
    assert main(["serve", "--ray", "--models-dir", "models"]) == 2
    assert "install dropserve[ray]" in capsys.readouterr().err


def test_cli_ray_flags_without_ray_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # Without --ray, `--replicas 4` would otherwise silently start one plain process.
    assert main(["serve", "--replicas", "4", "--replica-gpus", "1"]) == 2
    assert "--replicas, --replica-gpus only work with --ray" in capsys.readouterr().err
