"""Every server process's metrics on the main port, when several share it.

The kernel hands each connection to one process, so a scrape of `/metrics` reaches one of them;
answering only for itself, a counter would seem to jump back and forth between scrapes. So each
process also answers `metrics` on its peer socket (service.peers), and the process
that takes a scrape collects its siblings' and answers for all of them, every series labelled
`process="<index>"` (sum them in PromQL). A sibling that does not answer in time (one being
restarted) is left out of that scrape and counted in `dropserve_metrics_processes_missing`.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from service.peers import Handler, ProcessPeers, ask_siblings

__all__ = ["collect_processes", "merge_expositions", "metrics_handler"]

_TIMEOUT_S = 2.0


def metrics_handler(registry: CollectorRegistry) -> Handler:
    """What this process answers a sibling's `metrics`: its own exposition."""

    async def answer(_: str) -> bytes:
        return generate_latest(registry)

    return answer


async def collect_processes(peers: ProcessPeers, registry: CollectorRegistry) -> bytes:
    """This process's metrics and its siblings', labelled by process, as one exposition."""
    answers = await ask_siblings(peers, "metrics", timeout=_TIMEOUT_S)
    texts = {peers.index: generate_latest(registry).decode()}
    for index, answer in answers.items():
        if answer:
            try:
                texts[index] = answer.decode()
            except UnicodeDecodeError:
                continue
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
