"""Every server process's metrics in one scrape: the expositions joined with a process label,
and siblings collected over their Unix sockets (a missing one counted, not fatal)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.observability.metrics import Metrics
from service.observability.process_metrics import (
    collect_processes,
    merge_expositions,
    metrics_handler,
)
from service.peers import ProcessPeers, answer_peers


def serve_own_metrics(peers: ProcessPeers, registry: CollectorRegistry) -> Any:
    """This process answering its siblings' `metrics`, as the app's lifespan sets it up."""
    return answer_peers(peers, {"metrics": metrics_handler(registry)})


def _metrics(requests: int) -> Metrics:
    metrics = Metrics()
    for _ in range(requests):
        metrics.observe_request("/v1/models/{name}/predict", "POST", 200, "toy", "1", 0.003)
    metrics.load_failures.inc()
    return metrics


def _samples(body: bytes, name: str) -> dict[str, float]:
    """Value of sample `name` by process label."""
    return {
        sample.labels["process"]: sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == name
    }


def test_joined_expositions_label_every_sample_with_its_process() -> None:
    texts = {index: generate_latest(_metrics(n).registry).decode() for index, n in [(1, 5), (0, 2)]}
    body = merge_expositions(texts, missing=0)
    assert _samples(body, "dropserve_http_requests_total") == {"0": 2.0, "1": 5.0}
    assert _samples(body, "dropserve_http_request_duration_seconds_count") == {"0": 2.0, "1": 5.0}
    assert _samples(body, "dropserve_model_load_failures_total") == {"0": 1.0, "1": 1.0}
    text = body.decode()
    # One family each, whatever the number of processes: the format allows no repeats.
    assert text.count("# TYPE dropserve_http_requests_total counter") == 1
    assert "dropserve_metrics_processes_missing 0.0" in text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert "process" in sample.labels or sample.name.startswith("dropserve_metrics")


def test_a_scrape_collects_the_siblings_and_counts_the_missing(tmp_path: Path) -> None:
    own, sibling = _metrics(3), _metrics(4)
    # Three processes; process 1 answers on its socket, process 2 never started.
    mine, theirs = ProcessPeers(0, 3, tmp_path), ProcessPeers(1, 3, tmp_path)

    async def scrape() -> bytes:
        async with serve_own_metrics(theirs, sibling.registry):
            assert theirs.socket(1).exists()
            return await collect_processes(mine, own.registry)

    body = asyncio.run(scrape())
    assert _samples(body, "dropserve_http_requests_total") == {"0": 3.0, "1": 4.0}
    assert "dropserve_metrics_processes_missing 1.0" in body.decode()
    assert not theirs.socket(1).exists()  # removed when its server stopped


def test_a_stale_socket_is_replaced_and_a_dead_one_skipped(tmp_path: Path) -> None:
    peers = ProcessPeers(1, 2, tmp_path)
    peers.socket(1).write_text("left by a process that died")
    peers.socket(0).write_text("not a socket")  # a dead sibling's leftover: refused, skipped

    async def scrape() -> bytes:
        async with serve_own_metrics(peers, _metrics(1).registry):
            return await collect_processes(ProcessPeers(1, 2, tmp_path), _metrics(2).registry)

    body = asyncio.run(scrape())
    assert _samples(body, "dropserve_http_requests_total") == {"1": 2.0}
    assert "dropserve_metrics_processes_missing 1.0" in body.decode()
