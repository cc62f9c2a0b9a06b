"""/metrics after a known sequence of requests: exact counts, histogram sample counts and sums.

Each test module gets its own app, so every count starts at zero (one registry per app).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bench.harness.load import free_port
from service.config import Settings
from service.dataplane.observer import InferenceEvent, Mode
from service.dataplane.plane import DataPlane
from service.dataplane.registry import ModelRegistry
from service.engines import MCDropoutEngine, OnnxEngine
from service.errors import OverloadedError, RequestTimeoutError
from tests.integration.conftest import make_client

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dropserve-dashboard.json"

V1_PINNED = "/v1/models/{name}/versions/{version}/predict"
ROW = [1.0, 2.0, 3.0]

Labels = frozenset[tuple[str, str]]


def labels(**pairs: str) -> Labels:
    return frozenset(pairs.items())


class Scrape:
    """One /metrics answer, parsed with prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.families = list(text_string_to_metric_families(text))
        self.values: dict[str, dict[Labels, float]] = {}
        for family in self.families:
            for sample in family.samples:
                self.values.setdefault(sample.name, {})[labels(**sample.labels)] = sample.value

    def series(self, name: str, **fixed: str) -> dict[Labels, float]:
        """Samples of `name` whose labels include `fixed`, keyed by all their labels."""
        wanted = labels(**fixed)
        return {k: v for k, v in self.values.get(name, {}).items() if wanted <= k}

    def value(self, name: str, **exact: str) -> float:
        return self.values[name][labels(**exact)]

    def names(self) -> set[str]:
        """Family names and sample names (`_total`, `_bucket`, `_sum`, `_count` included)."""
        return {f.name for f in self.families} | set(self.values)


def scrape(client: TestClient) -> Scrape:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return Scrape(response.text)


def v2_body(rows: int, **parameters: Any) -> dict[str, Any]:
    tensor = {"name": "features", "shape": [rows, 3], "datatype": "FP32", "data": [ROW] * rows}
    return {"inputs": [tensor], "parameters": parameters}


@pytest.fixture(scope="module")
def client(toy_models_dir: Path) -> Iterator[TestClient]:
    yield from make_client(toy_models_dir, max_rows=50, max_samples=5000, max_work=20_000)


@pytest.fixture(scope="module")
def after_sequence(client: TestClient) -> Scrape:
    """Run the known sequence once, then scrape."""
    calls: list[tuple[str, str, dict[str, Any], int]] = [
        ("POST", "/v1/models/toyreg/versions/1/predict", {"json": {"instances": [ROW] * 3}}, 200),
        ("POST", "/v1/models/toyreg/versions/1/predict", {"json": {"instances": [ROW]}}, 200),
        (
            "POST",
            "/v1/models/toyreg/uncertainty",
            {"json": {"instances": [ROW] * 2, "samples": 50}},
            200,
        ),
        ("POST", "/v1/models/nope/predict", {"json": {"instances": [ROW]}}, 404),
        ("POST", "/v1/models/toyreg/versions/1/predict", {"json": {"instances": [[1, 2]]}}, 422),
        (
            "POST",
            "/v1/models/toyreg/versions/1/uncertainty",
            {"json": {"instances": [ROW], "samples": 5001}},
            422,
        ),
        (
            "POST",
            "/v2/models/toycls/infer",
            {"json": v2_body(4, mode="uncertainty", samples=20)},
            200,
        ),
        ("POST", "/v2/models/toyreg/versions/1/infer", {"json": v2_body(5)}, 200),
        ("GET", "/no/such/path", {}, 404),
        (
            "POST",
            "/v1/models/toyreg/versions/1/predict",
            {"content": b"1,2,3", "headers": {"content-type": "text/plain"}},
            415,
        ),
        ("GET", "/v1/models/toyreg/versions/1/predict", {}, 405),
    ]
    for method, path, kwargs, status in calls:
        response = client.request(method, path, **kwargs)
        assert response.status_code == status, (path, response.text)
    return scrape(client)


def test_http_requests_are_counted_by_template_status_and_model(after_sequence: Scrape) -> None:
    counted = {
        tuple(dict(k)[n] for n in ("endpoint", "method", "status", "model", "version")): v
        for k, v in after_sequence.series("dropserve_http_requests_total").items()
        if dict(k)["endpoint"] not in ("/health/ready", "/metrics")
    }
    assert counted == {
        (V1_PINNED, "POST", "200", "toyreg", "1"): 2,
        ("/v1/models/{name}/uncertainty", "POST", "200", "toyreg", "2"): 1,
        ("/v1/models/{name}/predict", "POST", "404", "", ""): 1,  # never names an unknown model
        (V1_PINNED, "POST", "422", "toyreg", "1"): 1,
        ("/v1/models/{name}/versions/{version}/uncertainty", "POST", "422", "toyreg", "1"): 1,
        ("/v2/models/{name}/infer", "POST", "200", "toycls", "1"): 1,
        ("/v2/models/{name}/versions/{version}/infer", "POST", "200", "toyreg", "1"): 1,
        ("other", "GET", "404", "", ""): 1,  # a raw path never becomes a label
        (V1_PINNED, "POST", "415", "", ""): 1,  # refused before routing, still its template
        (V1_PINNED, "GET", "405", "", ""): 1,
    }
    ready = after_sequence.series("dropserve_http_requests_total", endpoint="/health/ready")
    assert sum(ready.values()) >= 1  # the fixture's readiness polls


def test_latency_histogram_counts_every_request(after_sequence: Scrape) -> None:
    counts = after_sequence.series("dropserve_http_request_duration_seconds_count")
    totals = after_sequence.series("dropserve_http_requests_total")
    for key, count in counts.items():
        same = {k: v for k, v in totals.items() if key <= k}
        assert count == sum(same.values()), dict(key)
    pinned = labels(endpoint=V1_PINNED, method="POST")
    assert counts[pinned] == 2 + 1 + 1  # 200, 200, 422, 415


def test_inference_outcomes(after_sequence: Scrape) -> None:
    counted = {
        tuple(dict(k)[n] for n in ("model", "version", "mode", "outcome")): v
        for k, v in after_sequence.series("dropserve_inference_requests_total").items()
    }
    assert counted == {
        ("toyreg", "1", "predict", "ok"): 3,
        ("toyreg", "2", "uncertainty", "ok"): 1,
        ("toycls", "1", "uncertainty", "ok"): 1,
        ("toyreg", "1", "predict", "invalid"): 1,
        ("toyreg", "1", "uncertainty", "invalid"): 1,
    }


@pytest.mark.parametrize(
    "histogram",
    [
        "dropserve_inference_rows",
        "dropserve_batch_rows",
        "dropserve_inference_queue_seconds",
        "dropserve_inference_compute_seconds",
    ],
)
def test_admitted_requests_fill_the_inference_histograms(
    after_sequence: Scrape, histogram: str
) -> None:
    # Refused requests (422) never reach a worker; each admitted request is one executed batch.
    counts = after_sequence.series(f"{histogram}_count")
    assert counts == {
        labels(model="toyreg", version="1", mode="predict"): 3,
        labels(model="toyreg", version="2", mode="uncertainty"): 1,
        labels(model="toycls", version="1", mode="uncertainty"): 1,
    }
    buckets = after_sequence.series(f"{histogram}_bucket", le="+Inf")
    assert sorted(buckets.values()) == sorted(counts.values())


@pytest.mark.parametrize("histogram", ["dropserve_inference_rows", "dropserve_batch_rows"])
def test_rows_per_request_and_per_batch(after_sequence: Scrape, histogram: str) -> None:
    sums = after_sequence.series(f"{histogram}_sum")
    assert sums == {
        labels(model="toyreg", version="1", mode="predict"): 3 + 1 + 5,
        labels(model="toyreg", version="2", mode="uncertainty"): 2,
        labels(model="toycls", version="1", mode="uncertainty"): 4,
    }
    le_2 = after_sequence.series(f"{histogram}_bucket", model="toyreg", mode="predict", le="2.0")
    assert list(le_2.values()) == [1]  # the 1-row request; the 3- and 5-row ones are above


def test_mc_samples_per_request(after_sequence: Scrape) -> None:
    assert after_sequence.series("dropserve_mc_samples_count") == {
        labels(model="toyreg", version="2"): 1,
        labels(model="toycls", version="1"): 1,
    }
    assert after_sequence.series("dropserve_mc_samples_sum") == {
        labels(model="toyreg", version="2"): 50,
        labels(model="toycls", version="1"): 20,
    }


def test_models_device_and_in_flight(after_sequence: Scrape) -> None:
    assert after_sequence.series("dropserve_model_loaded") == {
        labels(model="toyreg", version="1"): 1,
        labels(model="toyreg", version="2"): 1,
        labels(model="toycls", version="1"): 1,
    }
    assert after_sequence.value("dropserve_model_load_seconds_count") == 3
    assert after_sequence.value("dropserve_model_load_failures_total") == 0
    (device,) = after_sequence.series("dropserve_device_info")
    assert dict(device)["device"] == "cpu"
    assert dict(device)["onnx_provider"] == "CPUExecutionProvider"
    assert after_sequence.value("dropserve_inference_in_flight") == 0
    assert after_sequence.value("dropserve_http_requests_in_flight") == 1  # the scrape itself
    # Declared for dashboards, but without samples off CUDA.
    assert "dropserve_gpu_memory_allocated_bytes" in after_sequence.names()
    assert not after_sequence.series("dropserve_gpu_memory_allocated_bytes")


def test_a_timeout_is_counted_with_its_compute_time(
    toy_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(
        self: MCDropoutEngine, *_: object, deadline: float | None = None, **_kw: object
    ) -> None:
        assert deadline is not None
        time.sleep(max(0.0, deadline - time.monotonic()) + 0.01)
        raise RequestTimeoutError("stopped after 0 of 10000 passes")

    for client in make_client(toy_models_dir, request_timeout_s=0.5):
        monkeypatch.setattr(MCDropoutEngine, "sample_segments", slow)  # after the warm-up
        request = {"instances": [ROW] * 4, "samples": 10_000}
        assert client.post("/v1/models/toyreg/uncertainty", json=request).status_code == 504
        metrics = scrape(client)
        key = {"model": "toyreg", "version": "2", "mode": "uncertainty"}
        assert metrics.value("dropserve_inference_requests_total", **key, outcome="timeout") == 1
        assert metrics.value("dropserve_inference_compute_seconds_count", **key) == 1
        assert metrics.value("dropserve_inference_compute_seconds_sum", **key) >= 0.4
        assert metrics.value("dropserve_mc_samples_sum", model="toyreg", version="2") == 10_000
        status = metrics.series("dropserve_http_requests_total", status="504", model="toyreg")
        assert list(status.values()) == [1]


class Recording:
    """An observer that keeps what the data plane reports."""

    def __init__(self) -> None:
        self.events: list[InferenceEvent] = []
        self.batches: list[tuple[str, int, str, int]] = []

    def on_inference(self, event: InferenceEvent) -> None:
        self.events.append(event)

    def on_batch(self, model: str, version: int, mode: Mode, rows: int) -> None:
        self.batches.append((model, version, mode, rows))


def test_an_overloaded_request_is_reported_without_queue_or_compute_time(
    toy_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        models_dir=toy_models_dir,
        warmup_rounds=0,
        inference_threads=1,
        max_queue=0,
        inline_max_macs=0,  # the tiny request must queue for the (blocked) worker
    )
    registry = ModelRegistry(settings)
    registry.load_all()
    recording = Recording()
    dataplane = DataPlane(registry, settings, observer=recording)
    release = threading.Event()
    original = OnnxEngine.predict

    def blocked(self: OnnxEngine, features: np.ndarray) -> np.ndarray:
        release.wait(timeout=10)
        return original(self, features)

    monkeypatch.setattr(OnnxEngine, "predict", blocked)

    async def one() -> None:
        with contextlib.suppress(OverloadedError):
            await dataplane.predict("toyreg", 1, [ROW, ROW])

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(one)
            while dataplane.inflight < 1:
                await anyio.sleep(0.01)
            await one()  # over the bound at once
            release.set()

    anyio.run(scenario)
    overloaded, ok = recording.events
    assert (overloaded.outcome, overloaded.rows, overloaded.queue_s) == ("overloaded", 2, None)
    assert overloaded.compute_s is None
    assert (ok.outcome, ok.model, ok.version, ok.mode, ok.rows) == ("ok", "toyreg", 1, "predict", 2)
    assert ok.queue_s is not None
    assert ok.compute_s is not None
    assert ok.compute_s > 0
    assert recording.batches == [("toyreg", 1, "predict", 2)]


def test_an_unexpected_error_is_a_counted_500_with_a_request_id(
    toy_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(DataPlane, "predict", broken)
    for client in make_client(toy_models_dir):
        response = client.post("/v1/models/toyreg/predict", json={"instances": [ROW]})
        assert response.status_code == 500
        assert response.json()["request_id"] == response.headers["x-request-id"]
        assert "a bug" not in response.text
        counted = scrape(client).series("dropserve_http_requests_total", status="500")
        assert list(counted) == [
            labels(
                endpoint="/v1/models/{name}/predict",
                method="POST",
                status="500",
                model="",
                version="",
            )
        ]


def test_load_failures_are_counted(tmp_path: Path) -> None:
    from tests.factories import make_bundle

    make_bundle(tmp_path, name="alpha", seed=1)
    broken = make_bundle(tmp_path, name="alpha", seed=2)
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    for client in make_client(tmp_path):
        metrics = scrape(client)
        assert metrics.value("dropserve_model_load_failures_total") == 1
        assert metrics.value("dropserve_model_load_seconds_count") == 1
        assert metrics.series("dropserve_model_loaded") == {labels(model="alpha", version="1"): 1}


def test_apps_do_not_share_a_registry(toy_models_dir: Path, after_sequence: Scrape) -> None:
    for client in make_client(toy_models_dir):
        fresh = scrape(client)
        assert not fresh.series("dropserve_inference_requests_total")
        assert after_sequence.series("dropserve_inference_requests_total")


def test_metrics_on_their_own_port(toy_models_dir: Path) -> None:
    port = free_port()
    for client in make_client(toy_models_dir, metrics_port=port):
        assert client.post("/v1/models/toycls/predict", json={"instances": [ROW]}).is_success
        assert client.get("/metrics").status_code == 404  # not on the main port
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        metrics = Scrape(response.text)
        key = {"model": "toycls", "version": "1", "mode": "predict", "outcome": "ok"}
        assert metrics.value("dropserve_inference_requests_total", **key) == 1
    with pytest.raises(httpx.TransportError):  # closed with the app
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_metrics_need_no_api_key(toy_models_dir: Path) -> None:
    for client in make_client(toy_models_dir, api_keys="key-one"):
        assert (
            client.post("/v1/models/toycls/predict", json={"instances": [ROW]}).status_code == 401
        )
        metrics = scrape(client)
        refused = metrics.series("dropserve_http_requests_total", status="401")
        assert list(refused.values()) == [1]


def test_every_dashboard_metric_exists(after_sequence: Scrape) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
        if "expr" in target
    ]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query", "")
        exprs.append(query["query"] if isinstance(query, dict) else query)
    assert len(exprs) >= 10
    used = {name for expr in exprs for name in re.findall(r"\bdropserve_[a-z_]+", expr)}
    missing = used - after_sequence.names()
    assert not missing, f"the dashboard queries metrics the server does not export: {missing}"


def test_gpu_memory_on_cuda(toy_models_dir: Path, requires_cuda: torch.device) -> None:
    for client in make_client(toy_models_dir, device=str(requires_cuda)):
        request = {"instances": [ROW] * 8, "samples": 100}
        assert client.post("/v1/models/toycls/uncertainty", json=request).is_success
        metrics = scrape(client)
        (device,) = metrics.series("dropserve_device_info")
        assert dict(device)["device"].startswith("cuda")
        (reserved,) = metrics.series("dropserve_gpu_memory_reserved_bytes").values()
        assert reserved > 0
