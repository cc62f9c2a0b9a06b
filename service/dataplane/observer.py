"""What the data plane reports about its work, for metrics and logs, without knowing who listens.

The data plane calls an `InferenceObserver` once per inference request (`on_inference`, with the
time spent waiting for a worker and computing) and once per batch a worker executes
(`on_batch`): a request that ran alone is a batch of one, and the dynamic batcher
(service.dataplane.batching) reports each batch it combined the same way. Implementations
live in `service.observability`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from service.errors import InvalidInputError, OverloadedError, RequestTimeoutError

__all__ = ["InferenceEvent", "InferenceObserver", "Mode", "NullObserver", "Outcome", "outcome_of"]

Mode = Literal["predict", "uncertainty"]
Outcome = Literal["ok", "invalid", "overloaded", "timeout", "cancelled", "error"]


@dataclass
class InferenceEvent:
    """One inference request of a loaded model, filled in as it goes through the data plane.

    `rows` and `samples` are 0 until known (`samples` stays 0 in predict mode); `queue_s` is set
    once the request was admitted to the worker queue, `compute_s` once a worker ran it.
    """

    model: str
    version: int
    mode: Mode
    rows: int = 0
    samples: int = 0
    queue_s: float | None = None
    compute_s: float | None = None
    outcome: Outcome = "ok"


class InferenceObserver(Protocol):
    """Receives the data plane's reports; called on the event loop, so it must not block."""

    def on_inference(self, event: InferenceEvent) -> None:
        """One request finished (`event.outcome` says how)."""

    def on_batch(self, model: str, version: int, mode: Mode, rows: int) -> None:
        """A worker executed one batch of `rows` rows."""


class NullObserver:
    """The observer of a data plane nobody watches."""

    def on_inference(self, event: InferenceEvent) -> None:
        return None

    def on_batch(self, model: str, version: int, mode: Mode, rows: int) -> None:
        return None


def outcome_of(exc: BaseException) -> Outcome:
    """The bounded outcome label of a failed request."""
    if isinstance(exc, InvalidInputError):
        return "invalid"
    if isinstance(exc, OverloadedError):
        return "overloaded"
    if isinstance(exc, RequestTimeoutError):
        return "timeout"
    if not isinstance(exc, Exception):
        return "cancelled"  # the client went away (anyio cancellation), or the server stops
    return "error"
