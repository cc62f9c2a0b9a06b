"""Exit signals: the first drains, only a repeated Ctrl-C abandons requests in flight."""

from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest
import uvicorn
from fastapi import FastAPI

from service.hosting.server import DrainingServer


def _server(
    drain_delay_s: float = 0.0, started: bool = True
) -> tuple[DrainingServer, SimpleNamespace]:
    app = FastAPI()
    dataplane = SimpleNamespace(draining=False, inflight=1)
    if started:
        app.state.dataplane = dataplane
    # log_config=None, as serve() does: uvicorn would otherwise reconfigure logging for the
    # whole test session.
    config = uvicorn.Config(app, log_config=None)
    return DrainingServer(config, app, drain_delay_s), dataplane


@pytest.mark.parametrize(
    ("signals", "forced"),
    [
        ([signal.SIGINT], False),
        ([signal.SIGTERM], False),
        # Ctrl-C on a supervised server: the worker's own SIGINT and the supervisor's relayed
        # SIGTERM, in either order, are one request to drain.
        ([signal.SIGINT, signal.SIGTERM], False),
        ([signal.SIGTERM, signal.SIGINT], False),
        ([signal.SIGTERM, signal.SIGTERM], False),
        ([signal.SIGINT, signal.SIGINT], True),  # Ctrl-C pressed twice
        ([signal.SIGINT, signal.SIGTERM, signal.SIGINT], True),
    ],
)
def test_only_a_repeated_sigint_forces_the_exit(signals: list[int], forced: bool) -> None:
    server, dataplane = _server()
    for sig in signals:
        server.handle_exit(sig, None)
    assert server.should_exit
    assert server.force_exit is forced
    assert dataplane.draining


def test_the_drain_delay_keeps_serving_until_it_passes() -> None:
    server, dataplane = _server(drain_delay_s=0.2)
    server.handle_exit(signal.SIGTERM, None)
    assert dataplane.draining
    assert not server.should_exit  # still answering while load balancers see the 503
    server.handle_exit(signal.SIGINT, None)  # then Ctrl-C: stop now, but gracefully
    assert server.should_exit
    assert not server.force_exit


def test_a_signal_before_startup_stops_at_once() -> None:
    server, _ = _server(started=False)
    server.handle_exit(signal.SIGINT, None)
    assert server.should_exit
    assert not server.force_exit
