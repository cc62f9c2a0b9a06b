"""The data plane's observer: its reports become metrics and fill in the request's context."""

from __future__ import annotations

from service.dataplane.observer import InferenceEvent, Mode
from service.observability.context import current_request
from service.observability.metrics import Metrics

__all__ = ["InferenceRecorder"]


class InferenceRecorder:
    """An `InferenceObserver` that records into `metrics` and tells the access line which
    model, mode, rows and samples the request ended up with."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_inference(self, event: InferenceEvent) -> None:
        self.metrics.observe_inference(event)
        context = current_request()
        if context is None:  # called outside HTTP (a test, a batch job)
            return
        context.model = event.model
        context.version = event.version
        context.mode = event.mode
        context.rows = event.rows or None
        context.samples = event.samples or None

    def on_batch(self, model: str, version: int, mode: Mode, rows: int) -> None:
        self.metrics.observe_batch(model, version, mode, rows)
