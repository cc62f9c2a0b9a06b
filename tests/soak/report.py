"""The soak test's scoring: what the load recorded, the summary, its printout, and the verdict."""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_RSS_GROWTH_PCT", "Stats", "percentile", "problems", "report", "summarise"]

MAX_RSS_GROWTH_PCT = 10.0


@dataclass
class Stats:
    latencies_ms: dict[str, list[float]] = field(
        default_factory=lambda: {"predict": [], "uncertainty": []}
    )
    errors: Counter[str] = field(default_factory=Counter)
    backpressure: int = 0
    versions: dict[str, set[int]] = field(default_factory=dict)
    reloads: list[dict[str, Any]] = field(default_factory=list)
    added: str | None = None  # `name/version` of the version added before the first reload
    unread: int = 0  # requests the idle readers sent and never read an answer to
    dropped: int = 0  # idle readers' connections the server dropped

    @property
    def ok(self) -> int:
        return sum(len(values) for values in self.latencies_ms.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summarise(stats: Stats, memory: dict[str, float], args: argparse.Namespace) -> dict[str, Any]:
    every = [v for values in stats.latencies_ms.values() for v in values]
    failed_reloads = [r for r in stats.reloads if r["status"] != 200]
    swapped = bool(stats.reloads) and stats.reloads[0]["expected"] in stats.reloads[0]["loaded"]
    name, _, version = (stats.added or "/").partition("/")
    answered_new = version.isdigit() and int(version) in stats.versions.get(name, set())
    growth = 100 * (memory["rss_end_mib"] / memory["rss_start_mib"] - 1)
    return {
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "reload_every_s": args.reload_every,
            "samples": args.samples,
            "predict_share": args.predict_share,
            "idle_readers": args.idle_readers,
            "seed": args.seed,
        },
        # Answered requests; back-pressure 503s are counted apart, not as requests served.
        "requests": stats.ok + stats.error_count,
        "ok": stats.ok,
        "errors": stats.error_count,
        "error_kinds": dict(stats.errors.most_common(10)),
        "backpressure_503": stats.backpressure,
        "throughput_rps": stats.ok / args.duration,
        "latency_ms": {
            kind: {
                "count": len(values),
                "p50": percentile(values, 50),
                "p99": percentile(values, 99),
                "max": max(values, default=0.0),
            }
            for kind, values in stats.latencies_ms.items()
        },
        "p99_ms": percentile(every, 99),
        "reloads": stats.reloads,
        "failed_reloads": len(failed_reloads),
        "reload_swapped": swapped,
        "versions_seen": {name: sorted(v) for name, v in stats.versions.items()},
        "added_version": stats.added,
        "new_version_answered": answered_new,
        "unread_requests": stats.unread,
        "idle_connections_dropped": stats.dropped,
        **{key: round(value, 1) for key, value in memory.items()},
        "rss_growth_pct": growth,
    }


def report(result: dict[str, Any]) -> None:
    print(f"{'kind':<12}{'ok':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for kind, row in result["latency_ms"].items():
        print(
            f"{kind:<12}{row['count']:>8}{row['p50']:>10.1f}{row['p99']:>10.1f}{row['max']:>10.1f}"
        )
    for kind, count in result["error_kinds"].items():
        print(f"error  {count:>6}  {kind}")
    for reload in result["reloads"]:
        print(f"reload {reload['status']} in {reload['seconds']} s, loaded {reload['loaded']}")
    print(f"versions seen: {result['versions_seen']}")
    print(f"SOAK requests {result['requests']}")
    print(f"SOAK errors {result['errors']}")
    print(f"SOAK backpressure_503 {result['backpressure_503']}")
    print(f"SOAK throughput_rps {result['throughput_rps']:.1f}")
    print(f"SOAK p99_ms {result['p99_ms']:.1f}")
    print(f"SOAK reloads {len(result['reloads'])}")
    print(f"SOAK failed_reloads {result['failed_reloads']}")
    print(f"SOAK reload_swapped {int(result['reload_swapped'])}")
    print(f"SOAK new_version_answered {int(result['new_version_answered'])}")
    print(f"SOAK unread_requests {result['unread_requests']}")
    print(f"SOAK idle_connections_dropped {result['idle_connections_dropped']}")
    print(f"SOAK rss_start_mib {result['rss_start_mib']:.1f}")
    print(f"SOAK rss_end_mib {result['rss_end_mib']:.1f}")
    print(f"SOAK rss_growth_pct {result['rss_growth_pct']:.1f}")


def problems(result: dict[str, Any]) -> list[str]:
    found = []
    if result["errors"]:
        found.append(f"{result['errors']} request(s) failed")
    if result["failed_reloads"]:
        found.append(f"{result['failed_reloads']} reload(s) did not answer 200")
    if not result["reload_swapped"]:
        found.append("no reload loaded the new bundle version")
    elif not result["new_version_answered"]:
        found.append(f"no request was answered by {result['added_version']} after its reload")
    if result["rss_growth_pct"] >= MAX_RSS_GROWTH_PCT:
        found.append(f"RSS grew {result['rss_growth_pct']:.1f} % (limit {MAX_RSS_GROWTH_PCT:g} %)")
    if result["server_exit_code"] != 0:
        found.append(f"the server exited with {result['server_exit_code']} on SIGTERM")
    return found
