"""Admin actions with several server processes: every process acts before the answer, and the
answer names a process that did not (207). Two apps in this process stand for two workers,
talking over their peer sockets as the supervisor's workers do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from service.peers import ProcessPeers
from tests.factories import make_bundle
from tests.integration.conftest import wait_ready

TOKEN = "s3cret-admin-token-value"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROW = {"instances": [[1.0, 2.0, 3.0]]}


def _workers(
    models_dir: Path, sockets: Path, count: int, running: int
) -> Iterator[list[TestClient]]:
    # No watching: the processes must load new versions because the admin reload reached them.
    settings = Settings(models_dir=models_dir, warmup_rounds=1, admin_token=TOKEN, watch_s=0)  # type: ignore[arg-type]
    with ExitStack() as stack:
        clients = []
        for index in range(running):
            app = create_app(settings, peers=ProcessPeers(index, count, sockets))
            client = stack.enter_context(TestClient(app, raise_server_exceptions=False))
            wait_ready(client)
            clients.append(client)
        yield clients


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    make_bundle(tmp_path / "models", name="alpha", seed=1)
    make_bundle(tmp_path / "models", name="beta", seed=2)
    return tmp_path / "models"


@pytest.fixture
def two(models_dir: Path, tmp_path: Path) -> Iterator[list[TestClient]]:
    (tmp_path / "sockets").mkdir()
    yield from _workers(models_dir, tmp_path / "sockets", count=2, running=2)


def test_unload_and_load_reach_every_process_before_the_answer(two: list[TestClient]) -> None:
    first, second = two
    answer = first.post("/admin/models/alpha/unload", headers=AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "unloaded"
    assert [p["process"] for p in body["processes"]] == [0, 1]
    assert all(p["status"] == "ok" and p["unloaded"] == ["alpha/1"] for p in body["processes"])
    for client in two:  # no waiting: both have acted by the time of the answer
        assert client.post("/v1/models/alpha/predict", json=ROW).status_code == 404
        assert client.post("/v1/models/beta/predict", json=ROW).status_code == 200

    answer = second.post("/admin/models/alpha/load", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert all(p["loaded"] == ["alpha/1"] for p in answer.json()["processes"])
    for client in two:
        assert client.post("/v1/models/alpha/predict", json=ROW).status_code == 200


def test_reload_reports_what_each_process_loaded(two: list[TestClient], models_dir: Path) -> None:
    make_bundle(models_dir, name="alpha", seed=3)
    answer = two[1].post("/admin/reload", headers=AUTH)
    assert answer.status_code == 200, answer.text
    processes = answer.json()["processes"]
    assert [(p["process"], p["loaded"]) for p in processes] == [
        (0, ["alpha/2"]),
        (1, ["alpha/2"]),
    ]
    for client in two:
        assert client.get("/v1/models/alpha").json()["version"] == 2


def test_a_process_that_does_not_answer_makes_it_207_and_is_named(
    models_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "sockets").mkdir()
    # Three processes, of which process 2 is down (being restarted, say).
    for clients in _workers(models_dir, tmp_path / "sockets", count=3, running=2):
        answer = clients[0].post("/admin/models/beta/unload", headers=AUTH)
        assert answer.status_code == 207, answer.text
        body = answer.json()
        assert body["status"] == "partial"
        down = [p for p in body["processes"] if p["status"] == "error"]
        assert [p["process"] for p in down] == [2]
        assert "did not answer" in down[0]["error"]
        assert clients[1].post("/v1/models/beta/predict", json=ROW).status_code == 404


def test_an_unknown_model_is_404_before_any_sibling_is_asked(two: list[TestClient]) -> None:
    answer = two[0].post("/admin/models/nosuch/unload", headers=AUTH)
    assert answer.status_code == 404
    assert "nosuch" in answer.json()["error"]
