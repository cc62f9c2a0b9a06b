"""The protocol-neutral data plane: look up a model, validate rows and limits, run an engine.

Both HTTP protocols (our JSON API and the Open Inference Protocol) call this; inference runs on
worker threads, bounded by a capacity limiter, so the event loop keeps answering health checks.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import anyio
import numpy as np
import numpy.typing as npt
import torch

from service.config import Settings
from service.engines import (
    ClassificationSummary,
    RegressionSummary,
    summarise_classification,
    summarise_regression,
)
from service.errors import InvalidInputError, OverloadedError, RequestTimeoutError
from service.inputs import Rows, encode_instances
from service.observer import InferenceEvent, InferenceObserver, Mode, NullObserver, outcome_of
from service.registry import LoadedModel, ModelRegistry

__all__ = ["DataPlane", "Prediction", "Uncertainty"]

T = TypeVar("T")


def _require_finite(finite_rows: npt.ArrayLike) -> None:
    """Refuse outputs that overflowed: a 200 carrying nulls for them would be silently wrong."""
    bad = np.flatnonzero(~np.asarray(finite_rows, dtype=bool))
    if bad.size:
        raise InvalidInputError(
            f"instances[{int(bad[0])}]: the model's output is not a finite number (its float32 "
            "arithmetic overflowed); the feature values are far outside the range the model was "
            "trained on, send values of a realistic magnitude"
        )


@dataclass(frozen=True)
class Prediction:
    """Deterministic output: regression values or class probabilities, shape (rows, outputs)."""

    model: LoadedModel
    values: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Uncertainty:
    """MC-dropout summary plus the request parameters actually used (echoed to the client)."""

    model: LoadedModel
    summary: RegressionSummary | ClassificationSummary
    samples: int
    seed: int
    interval: float
    device: str
    draws: torch.Tensor | None  # (T, rows, outputs) when the client asked for the samples


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
        self._limiter = anyio.CapacityLimiter(settings.inference_threads)
        self._inflight = 0

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

    async def _run(self, work: Callable[[float], T], event: InferenceEvent) -> T:
        """Run `work(deadline)` on a worker thread within the queue bound and the timeout.

        The worker is not abandoned on timeout (its thread would keep the core busy outside the
        limiter's count); instead the engines check the monotonic `deadline` between chunks.
        Queue time (waiting for a worker) and compute time (in the worker) go into `event`.
        """
        settings = self.settings
        capacity = settings.inference_threads + settings.max_queue
        if self._inflight >= capacity:
            raise OverloadedError(
                f"the server is at capacity ({self._inflight} inference requests in flight, "
                f"limit {capacity}); retry after a moment"
            )
        self._inflight += 1
        timeout = settings.request_timeout_s
        submitted = time.perf_counter()
        started: float | None = None
        ended: float | None = None

        def timed(deadline: float) -> T:
            nonlocal started, ended
            started = time.perf_counter()
            try:
                return work(deadline)
            finally:
                ended = time.perf_counter()

        try:
            with anyio.fail_after(timeout):
                return await anyio.to_thread.run_sync(
                    timed, time.monotonic() + timeout, limiter=self._limiter
                )
        except TimeoutError:
            raise RequestTimeoutError(
                f"inference did not finish within {timeout:g} s; send fewer rows or samples "
                "(or raise DROPSERVE_REQUEST_TIMEOUT_S)"
            ) from None
        finally:
            self._inflight -= 1
            # Without a start the request timed out (or was cancelled) while it waited.
            event.queue_s = (started or time.perf_counter()) - submitted
            if started is not None and ended is not None:
                event.compute_s = ended - started
                self.observer.on_batch(event.model, event.version, event.mode, event.rows)

    def _rows(self, model: LoadedModel, instances: Rows) -> npt.NDArray[np.float64]:
        return encode_instances(instances, model.manifest.features, max_rows=self.settings.max_rows)

    async def predict(self, name: str, version: int | None, instances: Rows) -> Prediction:
        """Deterministic prediction through ONNX Runtime."""
        model = self.registry.get(name, version)
        with self._observed(model, "predict") as event:
            rows = self._rows(model, instances)
            event.rows = rows.shape[0]
            values = await self._run(lambda _deadline: model.deterministic.predict(rows), event)
            _require_finite(np.isfinite(values).all(axis=1))
        return Prediction(model=model, values=values)

    def check_mc_request(self, rows: int, samples: int, return_samples: bool) -> None:
        """Apply the configured bounds on T, on rows x T, and on returning raw samples."""
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
        if return_samples and samples > settings.max_return_samples:
            raise InvalidInputError(
                f"return_samples is allowed up to {settings.max_return_samples} samples, "
                f"got {samples}; lower samples or leave return_samples off"
            )

    async def uncertainty(
        self,
        name: str,
        version: int | None,
        instances: Rows,
        *,
        samples: int | None = None,
        seed: int | None = None,
        interval: float = 0.95,
        return_samples: bool = False,
    ) -> Uncertainty:
        """Monte-Carlo dropout: T stochastic passes in PyTorch, summarised per row."""
        model = self.registry.get(name, version)
        n_samples = self.settings.default_samples if samples is None else samples
        with self._observed(model, "uncertainty") as event:
            event.samples = n_samples
            rows = self._rows(model, instances)
            event.rows = rows.shape[0]
            self.check_mc_request(rows.shape[0], n_samples, return_samples)
            # Without a seed the request still gets one, echoed back, so any answer can be
            # replayed.
            used_seed = secrets.randbelow(2**31) if seed is None else seed

            def work(
                deadline: float,
            ) -> tuple[RegressionSummary | ClassificationSummary, torch.Tensor]:
                draws = model.mc.sample(rows, n_samples, used_seed, deadline=deadline)
                _require_finite(torch.isfinite(draws).all(dim=2).all(dim=0).cpu().numpy())
                if model.manifest.task == "classification":
                    return summarise_classification(draws), draws
                tau = torch.tensor(model.manifest.tau or (), dtype=torch.float64)
                return summarise_regression(draws, tau, interval), draws

            summary, draws = await self._run(work, event)
        return Uncertainty(
            model=model,
            summary=summary,
            samples=n_samples,
            seed=used_seed,
            interval=interval,
            device=str(model.mc.device),
            draws=draws if return_samples else None,
        )
