"""The outermost middleware: a request id for every request, its metrics and one access line.

The id comes from the client's `X-Request-ID` (when plain and short) or is generated; it is
echoed in the response's `X-Request-ID`, stamped on every log record of the request and put in
error bodies. The access line names the route template, never the raw path, and carries no
header or body content: no feature values, no tokens.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.observability.context import RequestContext, enter, request_id_from
from service.observability.metrics import Metrics
from service.observability.routes import OTHER, RouteTemplates

__all__ = ["AccessMiddleware"]

logger = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUEST_ID = b"x-request-id"
CLIENT_CLOSED = 499  # no response was sent: the client went away first (nginx's convention)


class AccessMiddleware:
    """Assign the request id, count and time the request, and log one access line."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: FastAPI) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = RouteTemplates(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(request_id_from(Headers(scope=scope).get("x-request-id")))
        # Not reset afterwards: the request's task ends with it, and an unhandled error is
        # answered outside this middleware by a handler that still needs the id.
        enter(context)
        request_id = context.request_id.encode()
        endpoint = self.templates.resolve(scope)
        status = CLIENT_CLOSED
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0].lower() != REQUEST_ID]
                message = {**message, "headers": [*headers, (REQUEST_ID, request_id)]}
            await send(message)

        self.metrics.http_in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if status == CLIENT_CLOSED:
                status = 500  # answered by the server error handler, outside this middleware
            raise
        finally:
            self.metrics.http_in_flight.dec()
            seconds = time.perf_counter() - started
            self._record(scope["method"], endpoint, status, seconds, context)

    def _record(
        self, method: str, endpoint: str, status: int, seconds: float, context: RequestContext
    ) -> None:
        model = context.model or ""
        version = "" if context.version is None else str(context.version)
        label = method if method in METHODS else OTHER
        self.metrics.observe_request(endpoint, label, status, model, version, seconds)
        if not logger.isEnabledFor(logging.INFO):
            return  # the line would be dropped: do not build it
        fields: dict[str, Any] = {
            "method": method,
            "path": endpoint,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "model": context.model,
            "version": context.version,
            "mode": context.mode,
            "rows": context.rows,
            "samples": context.samples,
        }
        words = [method, endpoint, str(status), f"{seconds * 1000:.1f} ms"]
        if context.model is not None:
            words += [f"model={context.model}/{context.version}", f"mode={context.mode}"]
        words += [f"{k}={fields[k]}" for k in ("rows", "samples") if fields[k] is not None]
        logger.info(" ".join(words), extra={"fields": fields})
