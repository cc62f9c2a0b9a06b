"""Several server processes on one port (`DROPSERVE_PROCESSES`), supervised by the first.

One Python process serves requests on one core: parsing JSON, routing and the many small calls
of a small model's inference all hold the GIL. With N processes the kernel hands each new
connection to whichever process accepts it first, so they share the port and the cores.

The supervisor binds the socket and starts the workers (spawned, so no CUDA or thread state is
inherited). It forwards SIGTERM/SIGINT to every worker, which drains as a single server does,
and exits 0 once all have exited cleanly; it forwards SIGHUP, on which every worker rescans the
models folder; and it restarts a worker that dies on its own, after a pause that doubles while
workers keep dying young.

Each worker keeps its own state: models, queue bound, metrics. The workers reach each other
over Unix sockets in a private folder the supervisor makes (service.peers): `/metrics`
on the main port answers for every worker, each series labelled with its index, and an admin
action (reload, load or unload a model) is taken by every worker before it is answered. With
DROPSERVE_METRICS_PORT each worker listens on METRICS_PORT + its index instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from service.config import Settings
from service.observability import configure_logging
from service.peers import ProcessPeers

__all__ = ["supervise"]

logger = logging.getLogger(__name__)

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_YOUNG_S = 10.0  # a worker that dies sooner than this after starting counts as crash-looping
_MAX_PAUSE_S = 30.0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(settings: Settings, sock: socket.socket, peers: ProcessPeers) -> None:
    """A worker process: the single-process server on the shared socket."""
    # A SIGHUP relayed while this worker still imports would end it (the default action); the
    # models it is about to load are the folder's current ones anyway. The app's own handler
    # replaces this once it runs.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from service.hosting.server import serve

    serve(settings, sockets=[sock], peers=peers)


@dataclass
class _Slot:
    index: int
    process: BaseProcess
    started: float


class _Supervisor:
    def __init__(self, settings: Settings, sock: socket.socket, sockets_folder: Path) -> None:
        self.settings = settings
        self.sock = sock
        self.sockets_folder = sockets_folder
        self.context = multiprocessing.get_context("spawn")
        self.slots: list[_Slot] = []
        self.restarts: dict[int, int] = {}  # index -> times its worker was replaced
        self.stopping = False
        self.pause_s = 1.0

    def start(self, index: int) -> _Slot:
        settings = self.settings
        if settings.metrics_port:
            settings = settings.model_copy(update={"metrics_port": settings.metrics_port + index})
        process = self.context.Process(
            target=_worker,
            args=(
                settings,
                self.sock,
                ProcessPeers(
                    index, settings.processes, self.sockets_folder, self.restarts.get(index, 0)
                ),
            ),
            name=f"dropserve-worker-{index}",
        )
        process.start()
        logger.info("worker %d started (pid %s)", index, process.pid)
        return _Slot(index, process, time.monotonic())

    def forward(self, sig: int, frame: FrameType | None) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
            # Ctrl-C in a terminal already sent the workers (same process group) a SIGINT; a
            # second SIGINT would make uvicorn abandon requests in flight, a SIGTERM does not.
            sig = signal.SIGTERM
        for slot in self.slots:
            if slot.process.pid is not None and slot.process.is_alive():
                os.kill(slot.process.pid, sig)

    def run(self) -> int:
        for sig in _FORWARDED:
            signal.signal(sig, self.forward)
        self.slots = [self.start(index) for index in range(self.settings.processes)]
        failed = False
        while self.slots:
            time.sleep(0.2)
            for slot in list(self.slots):
                if slot.process.is_alive():
                    continue
                code = slot.process.exitcode
                self.slots.remove(slot)
                if self.stopping:
                    # -SIGTERM: stopped before it had installed its handlers, so before serving.
                    failed |= code not in (0, -signal.SIGTERM)
                    continue
                replacement = self.restart(slot, code)
                if replacement is not None:
                    self.slots.append(replacement)
        return 1 if failed else 0

    def restart(self, slot: _Slot, code: int | None) -> _Slot | None:
        young = time.monotonic() - slot.started < _YOUNG_S
        self.pause_s = min(self.pause_s * 2, _MAX_PAUSE_S) if young else 1.0
        logger.error(
            "worker %d (pid %s) exited with code %s; restarting it in %.0f s",
            slot.index,
            slot.process.pid,
            code,
            self.pause_s,
        )
        deadline = time.monotonic() + self.pause_s
        while time.monotonic() < deadline and not self.stopping:
            time.sleep(0.1)
        if self.stopping:
            return None
        self.restarts[slot.index] = self.restarts.get(slot.index, 0) + 1
        return self.start(slot.index)


def supervise(settings: Settings) -> int:
    """Serve with `settings.processes` worker processes until SIGTERM or SIGINT."""
    configure_logging(settings.log_level, settings.log_format)
    sock = _bind(settings.host, settings.port)
    port = sock.getsockname()[1]  # the one bound, when the setting was 0
    logger.info("dropserve: %d processes on http://%s:%d", settings.processes, settings.host, port)
    # Private (0700): the workers' metrics sockets, read by whichever worker takes a scrape.
    sockets_folder = Path(tempfile.mkdtemp(prefix="dropserve-metrics-"))
    try:
        return _Supervisor(settings, sock, sockets_folder).run()
    finally:
        sock.close()
        shutil.rmtree(sockets_folder, ignore_errors=True)
