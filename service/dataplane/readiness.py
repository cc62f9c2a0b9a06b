"""Readiness of the server, across its processes.

A process is ready once its models are loaded and warmed, and while it is not draining. With
several processes on one port, a load balancer's probe reaches one of them, but every process
takes connections as soon as it runs: so a process answers ready only when every sibling that
answers is ready too, and one still loading makes the probe wait. A sibling that is not running
(it died and is backing off before a restart), or that is starting and takes no connections
until its models are loaded, is named in the answer but does not hold the others back; one
that is running but does not answer in time is counted as busy, and does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from service.dataplane.plane import DataPlane
from service.peers import Handler, ProcessPeers, ask_siblings

__all__ = ["DOWN", "READY", "STARTING", "Readiness", "readiness", "readiness_handler"]

READY = "ready"
DOWN = "down"
STARTING = "starting"  # running, loading, and taking no connections until it is ready
_TIMEOUT_S = 1.0
_OWN_STATUSES = ("draining", "loading", "not_ready")


@dataclass(frozen=True)
class Readiness:
    """The server's status; `processes` names each process's when one is not ready (by index)."""

    status: str
    processes: dict[int, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.status == READY


def own_status(dataplane: DataPlane) -> str:
    """This process alone: draining, loading, not_ready (nothing loaded) or ready."""
    registry = dataplane.registry
    if dataplane.draining:
        return "draining"
    if not registry.ready:
        return "loading"
    if not registry.models():
        return "not_ready"
    return READY


async def readiness(dataplane: DataPlane, peers: ProcessPeers | None) -> Readiness:
    """This process's status, held back by any sibling that answers and is not ready."""
    own = own_status(dataplane)
    if peers is None or own != READY:
        return Readiness(own)
    # A sibling too busy to answer (loading models, warming up) may be taking connections.
    answers = await ask_siblings(peers, "ready", timeout=_TIMEOUT_S, silent=b"busy")
    statuses = {peers.index: own}
    for index, answer in answers.items():
        statuses[index] = answer.decode(errors="replace") if answer else DOWN
    # A sibling starting is the normal course of a start or restart: nothing to report.
    if all(status in (READY, STARTING) for status in statuses.values()):
        return Readiness(READY)
    waiting = [status for status in statuses.values() if status not in (READY, DOWN, STARTING)]
    if not waiting:
        return Readiness(READY, dict(sorted(statuses.items())))
    # A sibling busy (or answering something unknown) is reported as loading: it is not ready.
    overall = next((status for status in waiting if status in _OWN_STATUSES), "loading")
    return Readiness(overall, dict(sorted(statuses.items())))


def readiness_handler(dataplane: DataPlane, accepting: Callable[[], bool]) -> Handler:
    """What this process answers a sibling's `ready`: its own status, or `starting` while it
    takes no connections yet (then its status keeps no request waiting)."""

    async def answer(_: str) -> bytes:
        return (own_status(dataplane) if accepting() else STARTING).encode()

    return answer
