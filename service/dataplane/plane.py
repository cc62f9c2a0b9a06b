"""The protocol-neutral data plane: look up a model, validate rows and limits, run an engine.

Both HTTP protocols (our JSON API and the Open Inference Protocol) call this. Inference of up
to about a millisecond runs on the event loop; larger work runs on worker threads, bounded by a
capacity limiter, so the event loop keeps answering health checks. Concurrent unseeded requests
are batched (service.dataplane.batching) and summarised together (service.dataplane.summaries).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import numpy as np
import numpy.typing as npt
import torch

from service.config import Settings
from service.dataplane.batching import BatchFn, BatchItem, MicroBatcher
from service.dataplane.inputs import Rows, encode_instances
from service.dataplane.observer import (
    InferenceEvent,
    InferenceObserver,
    Mode,
    NullObserver,
    outcome_of,
)
from service.dataplane.registry import LoadedModel, ModelRegistry
from service.dataplane.results import Prediction, Uncertainty, as_arrays
from service.dataplane.rules import DEFAULT_INTERVAL
from service.dataplane.summaries import require_finite, summarise_requests
from service.engines.precision import Precision, resolve_precision
from service.errors import InvalidInputError, OverloadedError, RequestTimeoutError
from service.ids import new_seed

__all__ = ["DataPlane"]

T = TypeVar("T")


class DataPlane:
    """Runs inference for any protocol adapter."""

    def __init__(
        self,
        registry: ModelRegistry,
        settings: Settings,
        *,
        observer: InferenceObserver | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.observer: InferenceObserver = observer or NullObserver()
        self.draining = False  # set on SIGTERM: readiness turns 503 while in-flight work ends
        self._limiter = anyio.CapacityLimiter(settings.workers)
        self._inflight = 0
        self._capacity = settings.workers + settings.max_queue
        self._batcher: MicroBatcher[Any] | None = (
            MicroBatcher(
                settings.batch_max_delay_ms / 1000.0, settings.batch_max_rows, settings.workers
            )
            if settings.batching
            else None
        )

    @property
    def inflight(self) -> int:
        """Inference requests running or waiting for a worker."""
        return self._inflight

    @contextmanager
    def _observed(self, model: LoadedModel, mode: Mode) -> Iterator[InferenceEvent]:
        """An event for one request of `model`, reported to the observer however it ends."""
        event = InferenceEvent(model=model.name, version=model.version, mode=mode)
        try:
            yield event
        except BaseException as exc:
            event.outcome = outcome_of(exc)
            raise
        finally:
            self.observer.on_inference(event)

    @contextmanager
    def _admitted(self) -> Iterator[None]:
        """Count one request in flight, or refuse it beyond the queue bound (503)."""
        capacity = self._capacity
        if self._inflight >= capacity:
            raise OverloadedError(
                f"the server is at capacity ({self._inflight} inference requests in flight, "
                f"limit {capacity}); retry after a moment"
            )
        self._inflight += 1
        try:
            yield
        finally:
            self._inflight -= 1

    async def _execute(
        self,
        work: Callable[[float], T],
        events: list[InferenceEvent],
        submitted: list[float],
        macs: int,
    ) -> T:
        """Run `work(deadline)`, of `macs` multiply-adds, within the request timeout.

        Tiny work (at most `inline_max_macs`) runs right here on the event loop: a few hundred
        microseconds of small torch and NumPy calls cost less than the hop to a worker thread
        and back, and much less than the GIL contention between several such threads. The rest
        runs on a worker thread, which is not abandoned on timeout (it would keep the core busy
        outside the limiter's count); instead the engines check the monotonic `deadline`
        between chunks.
        Each request's queue time (since it was submitted) and the shared compute time go into
        its event; the executed batch is reported once.
        """
        timeout = self.settings.request_timeout_s
        remaining = timeout - (time.perf_counter() - min(submitted))
        started: float | None = None
        ended: float | None = None

        def timed(deadline: float) -> T:
            nonlocal started, ended
            started = time.perf_counter()
            try:
                return work(deadline)
            finally:
                ended = time.perf_counter()

        inline = macs <= self.settings.inline_max_macs
        try:
            if inline:
                return timed(time.monotonic() + remaining)
            with anyio.fail_after(max(remaining, 0.0)):
                return await anyio.to_thread.run_sync(
                    timed, time.monotonic() + remaining, limiter=self._limiter
                )
        except TimeoutError:
            raise RequestTimeoutError(
                f"inference did not finish within {timeout:g} s; send fewer rows or samples "
                "(or raise DROPSERVE_REQUEST_TIMEOUT_S)"
            ) from None
        finally:
            # Without a start the requests timed out (or were cancelled) while they waited.
            start = started or time.perf_counter()
            for event, since in zip(events, submitted, strict=True):
                event.queue_s = 0.0 if inline else start - since
                if started is not None and ended is not None:
                    event.compute_s = ended - started
            if started is not None and ended is not None and events:
                first = events[0]
                rows = sum(event.rows for event in events)
                self.observer.on_batch(first.model, first.version, first.mode, rows)

    def _rows(self, model: LoadedModel, instances: Rows) -> npt.NDArray[np.float64]:
        manifest = model.manifest
        return encode_instances(
            instances, manifest.features, max_rows=self.settings.max_rows, targets=manifest.targets
        )

    async def predict(self, name: str, version: int | None, instances: Rows) -> Prediction:
        """Deterministic prediction through ONNX Runtime."""
        model = self.registry.get(name, version)
        with self._observed(model, "predict") as event:
            rows = self._rows(model, instances)
            event.rows = rows.shape[0]
            values = await self._predict(model, rows, event)
        return Prediction(model=model, values=values)

    async def _predict(
        self, model: LoadedModel, rows: npt.NDArray[np.float64], event: InferenceEvent
    ) -> npt.NDArray[np.float64]:
        macs = rows.shape[0] * model.macs_per_row
        with self._admitted():
            # A tiny prediction skips the batch window too: waiting for company costs it more
            # than it could save.
            if self._batcher is None or macs <= self.settings.inline_max_macs:
                values = await self._execute(
                    lambda _deadline: model.deterministic.predict(rows),
                    [event],
                    [time.perf_counter()],
                    macs,
                )
                require_finite(np.isfinite(values).all(axis=1))
            else:
                key = ("predict", model.name, model.version)
                item = _Request(rows=rows, event=event)
                values = await self._batcher.submit(key, item, self._predict_batch(model))
        return values

    def _predict_batch(self, model: LoadedModel) -> BatchFn[Any]:
        async def run(items: list[BatchItem[Any]]) -> list[Any]:
            requests = [item for item in items if isinstance(item, _Request)]
            stacked = np.concatenate([item.rows for item in requests])
            values = await self._execute(
                lambda _deadline: model.deterministic.predict(stacked),
                [item.event for item in requests],
                [item.submitted for item in requests],
                stacked.shape[0] * model.macs_per_row,
            )
            results: list[Any] = []
            for part in _split(values, requests):
                try:
                    require_finite(np.isfinite(part).all(axis=1))
                    results.append(part)
                except InvalidInputError as exc:
                    results.append(exc)
            return results

        return run

    def check_mc_request(
        self, rows: int, samples: int, return_samples: bool, outputs: int = 1
    ) -> None:
        """Apply the configured bounds on T, on rows x T, and on returning raw samples (T
        per request, and rows x T x outputs values per answer)."""
        settings = self.settings
        if not 1 <= samples <= settings.max_samples:
            raise InvalidInputError(
                f"samples must be between 1 and {settings.max_samples}, got {samples}"
            )
        if rows * samples > settings.max_work:
            raise InvalidInputError(
                f"rows x samples = {rows} x {samples} = {rows * samples} exceeds the limit of "
                f"{settings.max_work} per request; send fewer rows or fewer samples"
            )
        if not return_samples:
            return
        if samples > settings.max_return_samples:
            raise InvalidInputError(
                f"return_samples is allowed up to {settings.max_return_samples} samples, "
                f"got {samples}; lower samples or leave return_samples off"
            )
        # The answer grows with every returned value, unlike the summaries: bounded here, before
        # any work, rather than found too large once it is built.
        values = rows * samples * outputs
        if values > settings.max_returned_values:
            most_rows = settings.max_returned_values // (samples * outputs)
            fix = (
                f"send at most {most_rows} rows at this number of samples, fewer samples"
                if most_rows
                else f"lower samples to {settings.max_returned_values // outputs} or fewer"
            )
            raise InvalidInputError(
                f"returning the samples would answer rows x samples x outputs = {rows} x "
                f"{samples} x {outputs} = {values} values, over the limit of "
                f"{settings.max_returned_values} per answer; {fix}, or do not ask for the "
                "samples"
            )

    async def uncertainty(
        self,
        name: str,
        version: int | None,
        instances: Rows,
        *,
        samples: int | None = None,
        seed: int | None = None,
        interval: float = DEFAULT_INTERVAL,
        return_samples: bool = False,
    ) -> Uncertainty:
        """Monte-Carlo dropout: T stochastic passes in PyTorch, summarised per row.

        A request without a seed gets one, echoed back, so any answer can be replayed; with
        batching on it shares a forward with others but keeps masks drawn from its own seed.
        A seeded request always runs alone, so replaying it is exact to the last bit.
        """
        model = self.registry.get(name, version)
        n_samples = self.settings.default_samples if samples is None else samples
        precision = resolve_precision(
            self.settings.precision,
            model.mc.device,
            n_samples,
            largest_layer_macs=model.mc.largest_layer_macs,
        )
        with self._observed(model, "uncertainty") as event:
            event.samples = n_samples
            rows = self._rows(model, instances)
            event.rows = rows.shape[0]
            self.check_mc_request(
                rows.shape[0], n_samples, return_samples, model.manifest.n_outputs
            )
            request = _Request(
                rows=rows,
                seed=new_seed() if seed is None else seed,
                event=event,
                interval=interval,
            )
            run = self._uncertainty_batch(model, n_samples, precision)
            with self._admitted():
                if self._batcher is None or seed is not None:
                    (result,) = await run([request])
                    if isinstance(result, BaseException):
                        raise result
                else:
                    key = ("uncertainty", model.name, model.version, n_samples)
                    result = await self._batcher.submit(key, request, run)
        summary, draws = result
        return Uncertainty(
            model=model,
            summary=as_arrays(summary),
            samples=n_samples,
            seed=request.seed,
            interval=interval,
            device=model.device,
            precision=precision,
            draws=draws.numpy() if return_samples else None,
        )

    def _uncertainty_batch(
        self, model: LoadedModel, samples: int, precision: Precision
    ) -> BatchFn[Any]:
        classification = model.manifest.task == "classification"
        tau = None if classification else torch.tensor(model.manifest.tau, dtype=torch.float64)

        async def run(items: list[BatchItem[Any]]) -> list[Any]:
            requests = [item for item in items if isinstance(item, _Request)]
            stacked = np.concatenate([item.rows for item in requests])
            segments = [(item.rows.shape[0], item.seed) for item in requests]

            def work(deadline: float) -> list[Any]:
                draws = model.mc.sample_segments(
                    stacked, segments, samples, deadline=deadline, precision=precision
                )
                sizes = [request.rows.shape[0] for request in requests]
                levels = [request.interval for request in requests]
                return summarise_requests(draws, sizes, levels, tau)

            return await self._execute(
                work,
                [item.event for item in requests],
                [item.submitted for item in requests],
                stacked.shape[0] * samples * model.macs_per_row,
            )

        return run


@dataclass
class _Request(BatchItem[Any]):
    """A request as the data plane batches it: rows, seed, its metrics event and parameters."""

    event: InferenceEvent = field(default_factory=lambda: InferenceEvent("", 0, "predict"))
    interval: float = DEFAULT_INTERVAL
    submitted: float = field(default_factory=time.perf_counter)


def _split(values: npt.NDArray[np.float64], requests: list[_Request]) -> list[Any]:
    bounds = np.cumsum([item.rows.shape[0] for item in requests])[:-1]
    return list(np.split(values, bounds))
