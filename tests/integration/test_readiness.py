"""Readiness across server processes: a sibling still loading holds the probe back; one that
does not answer (down, backing off) is named but does not."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from service.config import Settings
from service.dataplane import DataPlane, ModelRegistry
from service.dataplane.readiness import readiness
from service.peers import Handler, ProcessPeers, answer_peers


@pytest.fixture(scope="module")
def dataplane(toy_models_dir: Path) -> DataPlane:
    settings = Settings(models_dir=toy_models_dir, warmup_rounds=0)
    registry = ModelRegistry(settings)
    registry.load_all()
    return DataPlane(registry, settings)


def _says(status: str) -> dict[str, Handler]:
    async def answer(_: str) -> bytes:
        if status == "silent":
            await asyncio.sleep(5)  # past the readiness probe's timeout
        return status.encode()

    return {"ready": answer}


def _probe(
    dataplane: DataPlane, folder: Path, count: int, siblings: dict[int, str]
) -> tuple[str, dict[int, str]]:
    async def run() -> tuple[str, dict[int, str]]:
        async with AsyncExitStack() as stack:
            for index, status in siblings.items():
                peers = ProcessPeers(index, count, folder)
                await stack.enter_async_context(answer_peers(peers, _says(status)))
            state = await readiness(dataplane, ProcessPeers(0, count, folder))
        return state.status, state.processes

    return asyncio.run(run())


def test_every_process_ready_is_ready_with_nothing_to_report(
    dataplane: DataPlane, tmp_path: Path
) -> None:
    assert _probe(dataplane, tmp_path, 3, {1: "ready", 2: "ready"}) == ("ready", {})


def test_a_sibling_still_loading_holds_the_probe_back(dataplane: DataPlane, tmp_path: Path) -> None:
    status, processes = _probe(dataplane, tmp_path, 3, {1: "loading"})
    assert status == "loading"
    assert processes == {0: "ready", 1: "loading", 2: "down"}


def test_a_process_that_is_down_is_named_but_does_not_hold_back(
    dataplane: DataPlane, tmp_path: Path
) -> None:
    status, processes = _probe(dataplane, tmp_path, 3, {1: "ready"})
    assert status == "ready"
    assert processes == {0: "ready", 1: "ready", 2: "down"}


def test_a_sibling_that_does_not_answer_in_time_counts_as_busy(
    dataplane: DataPlane, tmp_path: Path
) -> None:
    status, processes = _probe(dataplane, tmp_path, 2, {1: "silent"})
    assert status == "loading"
    assert processes == {0: "ready", 1: "busy"}


def test_a_sibling_starting_takes_no_connections_and_does_not_hold_back(
    dataplane: DataPlane, tmp_path: Path
) -> None:
    assert _probe(dataplane, tmp_path, 2, {1: "starting"}) == ("ready", {})
    # Named beside a process that is down, which is worth reporting.
    status, processes = _probe(dataplane, tmp_path, 3, {1: "starting"})
    assert status == "ready"
    assert processes == {0: "ready", 1: "starting", 2: "down"}


def test_a_single_process_asks_nobody(dataplane: DataPlane) -> None:
    assert asyncio.run(readiness(dataplane, None)).status == "ready"
