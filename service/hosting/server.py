"""Run the app under uvicorn: one process (see service.hosting.supervisor for several), models
loaded in the background after bind.

Shutdown is graceful: on SIGTERM (or SIGINT) readiness turns 503 at once, so a load balancer
stops sending traffic, requests in flight get `shutdown_grace_s` to finish, then the process
exits 0.
"""

from __future__ import annotations

import logging
import math
import signal
import socket
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from service.api import create_app
from service.config import Settings
from service.hosting.protocol import ReadLimits, bounded_protocol
from service.observability import configure_logging
from service.peers import ProcessPeers

__all__ = ["DrainingServer", "configure_logging", "serve", "uvicorn_config"]

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, marking the app as draining as soon as an exit signal arrives."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_delay_s: float = 0.0) -> None:
        super().__init__(config)
        self._app = app
        self._drain_delay_s = drain_delay_s
        self._interrupted = False  # a SIGINT came: a second one abandons requests in flight

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGINT:
            # Only a repeated Ctrl-C forces the exit, whatever came between: a SIGTERM and a
            # SIGINT reach a supervised worker in either order when Ctrl-C hits the whole
            # process group (the supervisor relays it as SIGTERM), and both mean "drain".
            if self._interrupted:
                self.force_exit = True
            self._interrupted = True
        dataplane = getattr(self._app.state, "dataplane", None)
        if dataplane is None or dataplane.draining:
            self._stop()  # not started yet, or a second signal: stop now
            return
        dataplane.draining = True
        delay = self._drain_delay_s
        logger.info(
            "shutting down: readiness is now 503, %d inference request(s) in flight, "
            "stopping in %.1f s",
            dataplane.inflight,
            delay,
        )
        if delay > 0:
            # Keep listening while load balancers see the 503; uvicorn polls should_exit.
            timer = threading.Timer(delay, self._stop)
            timer.daemon = True
            timer.start()
        else:
            self._stop()

    def _stop(self) -> None:
        # Unlike uvicorn's own handler this does not re-raise the signal after shutdown: a
        # graceful stop exits 0, so orchestrators can tell it from a crash.
        self.should_exit = True


def serve(
    settings: Settings,
    sockets: list[socket.socket] | None = None,
    *,
    peers: ProcessPeers | None = None,
) -> None:
    """Serve every bundle under `settings.models_dir` until SIGTERM or SIGINT, on `sockets`
    when given (a worker of service.hosting.supervisor, with its `peers`) or on host:port."""
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, peers=peers)
    server = DrainingServer(uvicorn_config(app, settings), app, settings.drain_delay_s)
    server.run(sockets=sockets)


def uvicorn_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration for serving `app` under `settings`."""
    # uvicorn's records go through the same handler (log_config=None leaves logging to us);
    # its access log is off because the app writes its own access line per request. The
    # protocol is uvicorn's httptools one with bounds on reading a request (header size, read
    # timeouts, connections, pipelined requests), which uvicorn leaves open.
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=bounded_protocol(ReadLimits.from_settings(settings)),
        log_level=settings.log_level.lower(),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
    )
