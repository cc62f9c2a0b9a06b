"""uvicorn's httptools protocol with bounds on what reading one request may cost.

uvicorn bounds none of these: httptools gathers a header line in memory however long it grows
(a 100 MB header took 25 s of the event loop to parse, while liveness waited), and a connection
that sends nothing, or half a request, stays open until the client leaves. Each bound here is
enforced as the bytes arrive, before the app sees the request, and answered in the app's one
JSON error shape with `Connection: close`.

Pipelined requests are bounded too. uvicorn parses every request in each chunk it reads and
queues them behind the one being answered, and resumes reading after each answer, so a client
that keeps writing and never reads its answers made the queue, and the server's memory, grow
without bound (480 MB in 6 s from two such clients). Past `MAX_PIPELINED` queued requests the
connection is dropped: its client has read no answer in all that time, so none is lost that it
was waiting for.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.config import Settings
from service.ids import new_request_id

__all__ = ["MAX_PIPELINED", "BoundedHttpToolsProtocol", "ReadLimits", "bounded_protocol"]

logger = logging.getLogger(__name__)

# Requests queued behind the one being answered on one connection. Real pipelining clients keep
# a handful in flight; more is a client that is not reading.
MAX_PIPELINED = 16


@dataclass(frozen=True)
class ReadLimits:
    """What reading one request may cost a server process."""

    head_bytes: int  # the request line and headers together
    line_bytes: int  # the request line, or one header line
    head_timeout_s: float  # from the connection, or the request's first byte, to its last header
    body_timeout_s: float  # from the last header to the body's last byte
    connections: int  # open connections per process

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadLimits:
        return cls(
            head_bytes=settings.max_header_bytes,
            line_bytes=settings.max_header_line_bytes,
            head_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            connections=settings.max_connections,
        )


class _RefusedError(Exception):
    """Raised from a parser callback to stop parsing a request that broke a bound."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """One connection: uvicorn's protocol, refusing what passes `limits`."""

    limits: ClassVar[ReadLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._reading_head = True
        self._head_bytes = 0  # of the request being read, while its head is incomplete
        self._refusal: tuple[HTTPStatus, str] | None = None
        self._read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.connections:
            # Refused at once, not accepted and then held: a flood of idle connections would
            # otherwise keep a file descriptor and a buffer each.
            self._refuse(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"this server process already holds {self.limits.connections} connections, "
                "its limit (DROPSERVE_MAX_CONNECTIONS); retry later or reuse a connection",
            )
            return
        self._arm(self.limits.head_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused: what else arrives is not read
        if self._reading_head:
            room = self.limits.head_bytes - self._head_bytes
            if len(data) > room:
                # Parse only what the bound allows: if the head ends within it, the rest is the
                # body (or the next request); if not, the head is too large and is not gathered.
                super().data_received(data[:room])
                if self._reading_head and not self.transport.is_closing():
                    self._refuse(
                        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                        f"the request line and headers are over {self.limits.head_bytes} "
                        "bytes, the server's limit (DROPSERVE_MAX_HEADER_BYTES); send fewer "
                        "or shorter headers",
                    )
                    return
                data = data[room:]
            else:
                self._head_bytes += len(data)
        if data:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        # A parser callback raised _RefusedError: uvicorn's handler of parser errors lands here.
        if self._refusal is not None:
            self._refuse(*self._refusal)
            return
        super().send_400_response(msg)

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_timer is None:  # a new request on a kept-alive connection
            self._arm(self.limits.head_timeout_s)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.line_bytes:
            self._stop_parsing(
                HTTPStatus.REQUEST_URI_TOO_LONG,
                f"the request's URL is over {self.limits.line_bytes} bytes, the server's limit "
                "(DROPSERVE_MAX_HEADER_LINE_BYTES); send parameters in the body",
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > self.limits.line_bytes:
            shown = name[:64].decode("latin-1")
            self._stop_parsing(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"the header {shown!r} is over {self.limits.line_bytes} bytes, the server's "
                "limit per header (DROPSERVE_MAX_HEADER_LINE_BYTES); shorten it",
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._arm(self.limits.body_timeout_s)
        super().on_headers_complete()
        if len(self.pipeline) > MAX_PIPELINED and not self.transport.is_closing():
            logger.warning(
                "dropped a connection from %s: %d requests queued without their answers read",
                _peer(self.client),
                len(self.pipeline),
            )
            self._disarm()
            # abort, not close: close would wait to flush answers that are never read.
            self.transport.abort()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()
        # The next head starts after this one's body. With pipelined requests in one read, the
        # part of the read after this point is not counted: one read at most past the bound.
        self._reading_head = True
        self._head_bytes = 0

    # Bounds
    def _stop_parsing(self, status: HTTPStatus, message: str) -> None:
        self._refusal = (status, message)
        raise _RefusedError(message)

    def _arm(self, delay_s: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(delay_s, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self._reading_head:
            message = (
                f"the request line and headers did not arrive within "
                f"{self.limits.head_timeout_s:g} s (DROPSERVE_HEADER_TIMEOUT_S); send the "
                "whole head at once"
            )
        else:
            message = (
                f"the request body did not arrive within {self.limits.body_timeout_s:g} s of "
                "its headers (DROPSERVE_BODY_TIMEOUT_S); send it at once, or a smaller one"
            )
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # the app already answered; nothing more can be sent
            return
        self._refuse(HTTPStatus.REQUEST_TIMEOUT, message)

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        """Answer `status` in the app's error shape, then close the connection."""
        self._disarm()
        request_id = new_request_id()
        logger.warning("refused a request from %s: %s", _peer(self.client), message)
        body = json.dumps({"error": message, "request_id": request_id}).encode()
        head = [
            f"HTTP/1.1 {status.value} {status.phrase}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            f"x-request-id: {request_id}",
            "connection: close",
        ]
        if status is HTTPStatus.SERVICE_UNAVAILABLE:
            head.append("retry-after: 1")
        if self.cycle is not None and not self.cycle.response_complete:
            # A request the app is reading: it sees the client as gone and sends nothing more.
            self.cycle.keep_alive = False
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.write("\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body)
        self.transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"


def bounded_protocol(limits: ReadLimits) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for uvicorn's `Config(http=...)`, bound to `limits`."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})
