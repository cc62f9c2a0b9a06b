"""Hot reload under load: requests in flight finish on their version across a swap and an
unload, while new requests reach the new weights and no answer mixes two versions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import torch
from fastapi.testclient import TestClient

from service.api import create_app
from service.bundle import Bundle
from service.config import Settings
from service.engines import DeterministicEngine, StochasticEngine, build_engines
from service.engines.base import Segments
from service.engines.precision import Precision
from tests.factories import make_bundle
from tests.integration.conftest import wait_ready

TOKEN = "hot-reload-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROW = {"instances": [[1.0, 2.0, 3.0]]}
HELD_SEED = 4242  # the requests a test holds in flight use this seed; warm-up never does
HELD = {**ROW, "samples": 50, "seed": HELD_SEED}


class Gate:
    """Holds Monte-Carlo calls with the held seed until opened; tells when one is waiting."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.waiting = threading.Event()

    def pass_through(self, seeds: list[int]) -> None:
        if HELD_SEED in seeds and not self.open.is_set():
            self.waiting.set()
            assert self.open.wait(30), "the gate was never opened"


class GatedMC:
    """A real MC engine whose held requests wait at the gate before sampling."""

    def __init__(self, inner: StochasticEngine, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate

    def load(self) -> None:
        self._inner.load()

    @property
    def ready(self) -> bool:
        return self._inner.ready

    @property
    def device(self) -> torch.device:
        return self._inner.device

    @property
    def largest_layer_macs(self) -> int:
        return self._inner.largest_layer_macs

    def sample(
        self,
        features: npt.NDArray[np.float64],
        samples: int,
        seed: int,
        *,
        deadline: float | None = None,
        precision: Precision = "fp32",
    ) -> torch.Tensor:
        self._gate.pass_through([seed])
        return self._inner.sample(features, samples, seed, deadline=deadline, precision=precision)

    def sample_segments(
        self,
        features: npt.NDArray[np.float64],
        segments: Segments,
        samples: int,
        *,
        deadline: float | None = None,
        precision: Precision = "fp32",
    ) -> torch.Tensor:
        self._gate.pass_through([seed for _, seed in segments])
        return self._inner.sample_segments(
            features, segments, samples, deadline=deadline, precision=precision
        )


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def client(tmp_path: Path, gate: Gate) -> Iterator[TestClient]:
    make_bundle(tmp_path, name="alpha", seed=1)

    def engines(
        bundle: Bundle, device: torch.device, settings: Settings
    ) -> tuple[DeterministicEngine, StochasticEngine]:
        deterministic, mc = build_engines(bundle, device, settings)
        return deterministic, GatedMC(mc, gate)

    settings = Settings(
        models_dir=tmp_path,
        warmup_rounds=1,
        admin_token=TOKEN,
        inline_max_macs=0,  # a held request must wait on a worker, not on the event loop
        inference_threads=4,
        watch_s=0,  # each swap happens when the test reloads, not when the folder changes
    )
    try:
        with TestClient(create_app(settings, engines=engines)) as test_client:
            wait_ready(test_client)
            yield test_client
    finally:
        gate.open.set()


def in_flight(client: TestClient, gate: Gate) -> tuple[threading.Thread, list[httpx.Response]]:
    """Send the held request and return once it waits at the gate, inside its engine."""
    answers: list[httpx.Response] = []
    gate.waiting.clear()
    gate.open.clear()
    thread = threading.Thread(
        target=lambda: answers.append(client.post("/v1/models/alpha/uncertainty", json=HELD)),
        daemon=True,
    )
    thread.start()
    assert gate.waiting.wait(30), "the held request never reached its engine"
    return thread, answers


def finished(thread: threading.Thread, answers: list[httpx.Response]) -> dict[str, Any]:
    thread.join(30)
    assert answers, "the held request did not finish"
    assert answers[0].status_code == 200, answers[0].text
    body: dict[str, Any] = answers[0].json()
    return body


class Load:
    """Clients that send predictions in a loop and keep every answer."""

    def __init__(self, client: TestClient, clients: int = 4) -> None:
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(client,), daemon=True) for _ in range(clients)
        ]

    def _loop(self, client: TestClient) -> None:
        while not self._stop.is_set():
            response = client.post("/v1/models/alpha/predict", json=ROW)
            self.answers.append((response.status_code, response.json()))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def summary(body: dict[str, Any]) -> tuple[int, Any]:
    return body["version"], body["predictions"]


def test_requests_in_flight_finish_on_their_version_across_a_swap_and_an_unload(
    client: TestClient, gate: Gate, tmp_path: Path
) -> None:
    v1_predict = summary(client.post("/v1/models/alpha/predict", json=ROW).json())
    v1_held = summary(client.post("/v1/models/alpha/uncertainty", json=HELD).json())
    assert v1_predict[0] == 1

    with Load(client) as load:
        thread, answers = in_flight(client, gate)
        make_bundle(tmp_path, name="alpha", seed=9)  # different weights
        swapped = client.post("/admin/reload", headers=AUTH).json()
        assert swapped["loaded"] == ["alpha/2"]
        v2_predict = summary(client.post("/v1/models/alpha/predict", json=ROW).json())
        assert v2_predict[0] == 2
        assert v2_predict[1] != v1_predict[1]  # new requests reach the new weights
        gate.open.set()
        assert summary(finished(thread, answers)) == v1_held  # finished on version 1, intact

        v2_held = summary(client.post("/v1/models/alpha/uncertainty", json=HELD).json())
        assert v2_held[0] == 2
        assert v2_held[1] != v1_held[1]
        thread, answers = in_flight(client, gate)
        unloaded = client.post("/admin/models/alpha/unload", headers=AUTH).json()
        assert unloaded == {"status": "unloaded", "model": "alpha", "versions": [1, 2]}
        assert client.post("/v1/models/alpha/predict", json=ROW).status_code == 404
        gate.open.set()
        assert summary(finished(thread, answers)) == v2_held  # finished on the unloaded version

    expected = {1: v1_predict[1], 2: v2_predict[1]}
    seen: set[int] = set()
    for status, body in load.answers:
        assert status in (200, 404), body
        if status == 200:
            seen.add(body["version"])
            assert body["predictions"] == expected[body["version"]], body  # never a mix
    assert seen == {1, 2}
    assert load.answers[-1][0] == 404
