"""In-process API fixtures: an app over freshly built toy bundles, driven by Starlette's client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from tests.factories import make_bundle


@pytest.fixture(scope="session")
def toy_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`toyreg` (versions 1 and 2, two outputs in v2) and `toycls` (3 classes, classic dropout)."""
    models_dir = tmp_path_factory.mktemp("models")
    make_bundle(models_dir, name="toyreg", seed=1)
    make_bundle(models_dir, name="toyreg", seed=2, input_dropout=0.1, n_outputs=2)
    make_bundle(models_dir, name="toycls", task="classification", style="classic", seed=3)
    return models_dir


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/health/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("the app did not become ready")


def make_client(models_dir: Path, **overrides: object) -> Iterator[TestClient]:
    settings = Settings(models_dir=models_dir, warmup_rounds=1, **overrides)  # type: ignore[arg-type]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def client(toy_models_dir: Path) -> Iterator[TestClient]:
    yield from make_client(
        toy_models_dir, max_rows=50, max_samples=5000, max_work=20_000, max_return_samples=100
    )
