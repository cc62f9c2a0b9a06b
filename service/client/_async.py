"""The asyncio client: the same methods as `Client`, awaited."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from service.client._calls import (
    Call,
    Rows,
    check,
    full_url,
    model_path,
    no_answer,
    predict_call,
    uncertainty_call,
)
from service.client._results import ModelDetail, ModelSummary, PredictResult, UncertaintyResult
from service.client._sync import DEFAULT_URL

__all__ = ["AsyncClient"]


class AsyncClient:
    """A dropserve server's JSON API for asyncio code: `Client`'s methods, awaited.

    Args:
        base_url: where the server answers.
        api_key: sent as `X-API-Key` when the server requires keys.
        timeout: seconds to wait for each answer (None: wait for ever).
        http: an `httpx.AsyncClient` to send with instead of one of our own, for proxies, TLS
            settings or an in-process app; its own `base_url` and `timeout` apply, and `close`
            leaves it open.

    Every method raises `ApiError` when the server refuses the request or cannot be reached.
    Use it as an async context manager, or await `close`, to release its connections.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float | None = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = (
            http if http is not None else httpx.AsyncClient(base_url=base_url, timeout=timeout)
        )
        self._owns_http = http is None
        self._headers = {"X-API-Key": api_key} if api_key else {}

    async def models(self) -> list[ModelSummary]:
        """The loaded models, each with its versions and task."""
        answer = check(await self._send(Call("GET", "/v1/models")))
        return [ModelSummary.from_json(entry) for entry in answer["models"]]

    async def model(self, name: str, version: int | None = None) -> ModelDetail:
        """One model's features, outputs and example rows (the newest version by default)."""
        return ModelDetail.from_json(
            check(await self._send(Call("GET", model_path(name, version))))
        )

    async def predict(self, name: str, rows: Rows, version: int | None = None) -> PredictResult:
        """Deterministic predictions (ONNX Runtime) for `rows`.

        Args:
            name: the model.
            rows: lists in feature order or dicts keyed by feature name; a NumPy array or a
                pandas DataFrame works too.
            version: a pinned version; the newest when None.
        """
        return PredictResult.from_json(check(await self._send(predict_call(name, rows, version))))

    async def uncertainty(
        self,
        name: str,
        rows: Rows,
        samples: int | None = None,
        seed: int | None = None,
        interval: float | None = None,
        return_samples: bool = False,
        version: int | None = None,
    ) -> UncertaintyResult:
        """Monte-Carlo dropout summaries for `rows`; options left None take the server's
        defaults, and the seed used is in the result so that the answer can be replayed."""
        call = uncertainty_call(
            name,
            rows,
            samples=samples,
            seed=seed,
            interval=interval,
            return_samples=return_samples,
            version=version,
        )
        return UncertaintyResult.from_json(check(await self._send(call)))

    async def ready(self) -> bool:
        """Whether every model is loaded and warmed up (False while the server loads)."""
        response = await self._send(Call("GET", "/health/ready"))
        if response.status_code == 503:
            return False
        check(response)
        return True

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _send(self, call: Call) -> httpx.Response:
        extra: dict[str, Any] = {} if call.body is None else {"json": call.body}
        try:
            return await self._http.request(call.method, call.path, headers=self._headers, **extra)
        except httpx.TransportError as exc:
            raise no_answer(
                exc, full_url(self._http.base_url, call.path), self._http.timeout.read
            ) from exc
