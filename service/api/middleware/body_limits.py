"""ASGI middleware for request bodies: JSON content type (415) and a size limit (413).

It runs before FastAPI reads the body, so an oversized upload is refused without being buffered.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_content

__all__ = ["BodyLimitMiddleware", "replaying"]


async def _send_error(send: Send, status: int, message: str) -> None:
    body = json.dumps(error_content(message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse non-JSON POST bodies and bodies over `max_bytes` (declared or streamed)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, json_paths: tuple[str, ...] = ("/v1/",)
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.json_paths = json_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = self.max_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_error(
                send,
                413,
                f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes",
            )
            return
        path: str = scope["path"]
        if path.startswith(self.json_paths):
            content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if content_type != b"application/json" and not content_type.endswith(b"+json"):
                shown = content_type.decode("latin-1") or "none"
                await _send_error(send, 415, f"Content-Type must be application/json, got {shown}")
                return

        # The body is parsed whole anyway, so buffer it here (at most `limit` bytes) and refuse
        # an oversized chunked upload as soon as it crosses the limit.
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await _send_error(send, 413, f"request body exceeds the limit of {limit} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, replaying(b"".join(chunks), receive), send)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over an already read `body` once, then defers to `receive`."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
