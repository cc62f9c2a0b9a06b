"""uvicorn's httptools protocol with a bound on pipelined requests.

A client may send requests on one connection without reading the answers (HTTP/1.1
pipelining). uvicorn parses every request in each chunk it reads and queues them behind the one
being answered, and it resumes reading after each answer, so a client that keeps writing and
never reads makes the queue, and the server's memory, grow without bound (measured: 480 MB in
6 s from two such clients). Past `MAX_PIPELINED` queued requests the connection is dropped:
its client has not read an answer in all that time, so none is lost that it was waiting for.
"""

from __future__ import annotations

import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["MAX_PIPELINED", "BoundedHttpToolsProtocol"]

logger = logging.getLogger(__name__)

# Requests queued behind the one being answered on one connection. Real pipelining clients keep
# a handful in flight; more is a client that is not reading.
MAX_PIPELINED = 16


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if len(self.pipeline) > MAX_PIPELINED and not self.transport.is_closing():
            logger.warning(
                "closing a connection from %s: %d requests queued without their answers read",
                "{}:{}".format(*self.client) if self.client else "a client",
                len(self.pipeline),
            )
            # abort, not close: close would wait to flush answers that are never read.
            self.transport.abort()
