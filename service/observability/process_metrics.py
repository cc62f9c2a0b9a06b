"""Every server process's metrics on the main port, when several share it.

The kernel hands each connection to one process, so a scrape of `/metrics` reaches one of them;
answering only for itself, a counter would seem to jump back and forth between scrapes. So each
process also answers its own exposition on a Unix socket in a private folder the supervisor
made, and the process that takes a scrape collects its siblings' over those sockets and answers
for all of them, every series labelled `process="<index>"` (sum them in PromQL). A sibling that
does not answer in time (one being restarted) is left out of that scrape and counted in
`dropserve_metrics_processes_missing`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

__all__ = ["ProcessPeers", "collect_processes", "merge_expositions", "serve_own_metrics"]

logger = logging.getLogger(__name__)

_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ProcessPeers:
    """This process's place among the server processes: its index, how many there are, and
    the folder of their metrics sockets."""

    index: int
    count: int
    folder: Path

    def socket(self, index: int) -> Path:
        return self.folder / f"{index}.sock"


@asynccontextmanager
async def serve_own_metrics(
    peers: ProcessPeers, registry: CollectorRegistry
) -> AsyncIterator[None]:
    """Answer this process's own exposition on its socket while the block runs."""
    path = peers.socket(peers.index)
    path.unlink(missing_ok=True)  # left by the process this one replaces

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(generate_latest(registry))
            await writer.drain()
        except ConnectionError:
            pass  # the asking process gave up
        finally:
            writer.close()

    server = await asyncio.start_unix_server(answer, path=str(path))
    try:
        yield
    finally:
        server.close()
        path.unlink(missing_ok=True)


async def _fetch(path: Path) -> str | None:
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                return (await reader.read()).decode()
            finally:
                writer.close()
    except (OSError, TimeoutError, UnicodeDecodeError) as exc:
        logger.warning("metrics of server process at %s not collected: %r", path, exc)
        return None


async def collect_processes(peers: ProcessPeers, registry: CollectorRegistry) -> bytes:
    """This process's metrics and its siblings', labelled by process, as one exposition."""
    others = [index for index in range(peers.count) if index != peers.index]
    answers = await asyncio.gather(*(_fetch(peers.socket(index)) for index in others))
    texts = {peers.index: generate_latest(registry).decode()}
    texts.update((index, text) for index, text in zip(others, answers, strict=True) if text)
    return merge_expositions(texts, missing=peers.count - len(texts))


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def merge_expositions(texts: dict[int, str], missing: int = 0) -> bytes:
    """Expositions of several processes (by index) as one, each sample labelled with its
    process; families of the same name are joined."""
    families: dict[str, Metric] = {}
    for index, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            joined = families.get(family.name)
            if joined is None:
                joined = Metric(family.name, family.documentation, family.type, family.unit)
                families[family.name] = joined
            process = {"process": str(index)}
            joined.samples.extend(
                sample._replace(labels={**process, **sample.labels}) for sample in family.samples
            )
    gap = GaugeMetricFamily(
        "dropserve_metrics_processes_missing",
        "Server processes whose metrics this scrape could not collect (restarting, or slow).",
        value=missing,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*families.values(), gap]))
    return generate_latest(registry)
