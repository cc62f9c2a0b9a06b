"""Prometheus metrics: one `CollectorRegistry` per app, so apps (and tests) never share counts.

Label values are bounded: `endpoint` is a route template (or "other"), `method` one of the
standard methods (or "other"), `model`/`version` only ever name a loaded model (empty when the
request never reached one), `outcome` one of `service.dataplane.observer.Outcome`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from service.dataplane import DataPlane, ReloadReport
from service.dataplane.observer import InferenceEvent, Mode
from service.observability.state import state_metrics

__all__ = ["Metrics", "serve_metrics"]

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LOAD_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
SAMPLES = (1, 10, 30, 100, 300, 1000, 3000, 10000)
MODEL = ("model", "version")


class _StateCollector(Collector):
    """Gauges read at scrape time from the data plane (none until one is attached)."""

    def __init__(self) -> None:
        self.dataplane: DataPlane | None = None

    def collect(self) -> Iterable[Metric]:
        return [] if self.dataplane is None else state_metrics(self.dataplane)


class Metrics:
    """Every dropserve instrument, registered in the registry this object owns."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        registry = self.registry
        self.http_requests = Counter(
            "dropserve_http_requests",
            "HTTP requests by route template, method, status and resolved model.",
            ("endpoint", "method", "status", *MODEL),
            registry=registry,
        )
        self.http_duration = Histogram(
            "dropserve_http_request_duration_seconds",
            "HTTP request latency, from the first byte in to the last byte out.",
            ("endpoint", "method"),
            buckets=SECONDS,
            registry=registry,
        )
        self.http_in_flight = Gauge(
            "dropserve_http_requests_in_flight", "HTTP requests being served.", registry=registry
        )
        self.inference_requests = Counter(
            "dropserve_inference_requests",
            "Inference requests of a loaded model by mode and outcome.",
            (*MODEL, "mode", "outcome"),
            registry=registry,
        )
        self.queue_seconds = Histogram(
            "dropserve_inference_queue_seconds",
            "Time an admitted inference request waited for a worker.",
            (*MODEL, "mode"),
            buckets=SECONDS,
            registry=registry,
        )
        self.compute_seconds = Histogram(
            "dropserve_inference_compute_seconds",
            "Time a worker spent on an inference request.",
            (*MODEL, "mode"),
            buckets=SECONDS,
            registry=registry,
        )
        self.request_rows = Histogram(
            "dropserve_inference_rows",
            "Rows per admitted inference request.",
            (*MODEL, "mode"),
            buckets=ROWS,
            registry=registry,
        )
        self.batch_rows = Histogram(
            "dropserve_batch_rows",
            "Rows per batch a worker executed (one request, or several when batched).",
            (*MODEL, "mode"),
            buckets=ROWS,
            registry=registry,
        )
        self.mc_samples = Histogram(
            "dropserve_mc_samples",
            "Monte-Carlo passes T per admitted uncertainty request.",
            MODEL,
            buckets=SAMPLES,
            registry=registry,
        )
        self.load_seconds = Histogram(
            "dropserve_model_load_seconds",
            "Time to verify, load and warm up one model version.",
            buckets=LOAD_SECONDS,
            registry=registry,
        )
        self.load_failures = Counter(
            "dropserve_model_load_failures",
            "Bundles that failed verification or loading.",
            registry=registry,
        )
        self.process_restarts = Gauge(
            "dropserve_process_restarts",
            "Times the host restarted this server process's slot after it died (several "
            "processes on one port).",
            registry=registry,
        )
        self._state = _StateCollector()
        registry.register(self._state)

    def attach(self, dataplane: DataPlane) -> None:
        """Report loaded models, device, in-flight inference and GPU memory of `dataplane`."""
        self._state.dataplane = dataplane

    def _child(self, metric: Any, *labels: str) -> Any:
        # prometheus_client's labels() costs ~2 us a call, about ten per request; the label
        # sets are bounded (routes, statuses, loaded model versions), so their children are kept.
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(
        self, endpoint: str, method: str, status: int, model: str, version: str, seconds: float
    ) -> None:
        """One HTTP request answered."""
        self._child(self.http_requests, endpoint, method, str(status), model, version).inc()
        self._child(self.http_duration, endpoint, method).observe(seconds)

    def observe_inference(self, event: InferenceEvent) -> None:
        """One inference request finished; the histograms count only admitted requests."""
        model, version, mode = event.model, str(event.version), event.mode
        self._child(self.inference_requests, model, version, mode, event.outcome).inc()
        if event.queue_s is None:
            return
        self._child(self.queue_seconds, model, version, mode).observe(event.queue_s)
        self._child(self.request_rows, model, version, mode).observe(event.rows)
        if mode == "uncertainty":
            self._child(self.mc_samples, model, version).observe(event.samples)
        if event.compute_s is not None:
            self._child(self.compute_seconds, model, version, mode).observe(event.compute_s)

    def observe_batch(self, model: str, version: int, mode: Mode, rows: int) -> None:
        """A worker executed one batch."""
        self._child(self.batch_rows, model, str(version), mode).observe(rows)

    def observe_reload(self, report: ReloadReport) -> None:
        """Load times of the versions a (re)load brought in, and its failures."""
        for seconds in report.load_seconds.values():
            self.load_seconds.observe(seconds)
        if report.failed:
            self.load_failures.inc(len(report.failed))


@contextmanager
def serve_metrics(metrics: Metrics, host: str, port: int) -> Iterator[None]:
    """Serve `metrics` on their own port (any path) while the block runs."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
