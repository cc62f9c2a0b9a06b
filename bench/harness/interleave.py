"""Interleaved measurement: every server of a suite at once, their windows taken in turn.

These machines are shared, and their speed drifts by 15-30 % within a minute. Measuring one
server for 10 s and then the next compares them under different neighbours. So every server of a
suite runs at once, idle but for the one under load, and each case is split into short windows
that visit the servers in turn, round after round (the order rotated each round); a ratio is the
median of its per-round ratios, taken from windows seconds apart. Before each window, the last
server's backlog is waited out (bench.harness.load.wait_until_quiet).

A window's count undercounts it by about one latency, as wrk's first requests complete only
after one. So a group gets only as many rounds as keep its slowest case's windows ten latencies
long, and in full runs a case whose one window would still be shorter gets a longer one (up to
six times the case's time): the naive server at T=100 (~4 s latencies at concurrency 32) is
measured over 40 s instead of 10 s, which would undercount it by ~40 %. Such a group runs one
round, its cases back to back: their ratio compares windows up to about a minute apart.
(Little's law on wrk's mean latency would avoid the bias, but wrk's mean latency times its
request rate can exceed its connections.)

Latency percentiles pool the windows: each window's percentiles define its latency
distribution, and p50/p99 are read off their mixture weighted by requests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness.load import LUA, cpu_sample, cpu_use, servers_running, wait_until_quiet, wrk

__all__ = ["Case", "Measured", "interleaved", "median_ratio", "pooled_percentile"]

_WARMUP_CONCURRENCY = 4
_LATENCIES_PER_WINDOW = 10
_MAX_STRETCH = 6.0


@dataclass(frozen=True)
class Case:
    """One load: `path` on server `server` with the JSON `body`, at `concurrency`."""

    server: str
    path: str
    body: Path
    concurrency: int


@dataclass
class Measured:
    """A case's windows, one per round, and how many estimated latencies each one spans."""

    case: Case
    windows: list[dict[str, Any]] = field(default_factory=list)
    latencies_per_window: float = float("inf")

    def summary(self) -> dict[str, float]:
        """Req/s over all windows, p50 and p99 of the pooled latencies, total errors; and,
        where the windows measured them, the server's cores in use and the machine's idle
        share, averaged over time."""
        requests = sum(w["requests"] for w in self.windows)
        summary = {
            "rps": requests / sum(w["seconds"] for w in self.windows),
            "p50_ms": pooled_percentile(self.windows, 50),
            "p99_ms": pooled_percentile(self.windows, 99),
            "errors": sum(w["errors"] for w in self.windows),
        }
        timed = [w for w in self.windows if "server_cores" in w]
        if timed:
            seconds = sum(w["seconds"] for w in timed)
            for key in ("server_cores", "machine_idle"):
                summary[key] = sum(w[key] * w["seconds"] for w in timed) / seconds
        return summary


def pooled_percentile(windows: Sequence[dict[str, Any]], percentile: float) -> float:
    """The `percentile` of all windows' latencies together (ms), each window's distribution
    interpolated between its reported percentiles and weighted by its requests."""
    counted = [w for w in windows if w["requests"]]
    if not counted:
        return 0.0
    grid = np.unique(np.concatenate([[ms for _, ms in w["latency_ms"]] for w in counted]))
    weights = np.array([w["requests"] for w in counted], dtype=float)
    cdf = (
        sum(
            weight
            * np.interp(grid, [ms for _, ms in w["latency_ms"]], [p for p, _ in w["latency_ms"]])
            for weight, w in zip(weights, counted, strict=True)
        )
        / weights.sum()
    )
    return float(np.interp(percentile, cdf, grid))


def interleaved(
    servers: dict[str, tuple[list[str], dict[str, str]]],
    groups: Sequence[Sequence[Case]],
    work: Path,
    *,
    seconds: float,
    rounds: int,
    warmup: float,
    stretch: bool = True,
) -> list[Measured]:
    """Run every server at once and measure each case for `seconds` in all, in up to `rounds`
    windows (see the module's notes on slow cases and `stretch`).

    A group holds the cases compared with each other (the same load on different servers); a
    round runs every group once, its cases back to back."""
    script = work / "post.lua"
    script.write_text(LUA)
    with servers_running(servers, work) as running:
        warm_p50: dict[tuple[str, str, Path], float] = {}
        for group in groups:
            for case in group:
                key = (case.server, case.path, case.body)
                if key not in warm_p50:
                    url = running[case.server].url + case.path
                    warm = wrk(url, case.body, script, _WARMUP_CONCURRENCY, warmup)
                    warm_p50[key] = max(warm["p50_ms"] / 1e3, 1e-4)
                    wait_until_quiet(running[case.server].pid)

        def latency(case: Case) -> float:
            # A saturated server's latency grows with the requests in flight.
            scale = max(1.0, case.concurrency / _WARMUP_CONCURRENCY)
            return warm_p50[(case.server, case.path, case.body)] * scale

        plans = []
        for group in groups:
            slowest = max(latency(case) for case in group)
            windows = max(1, min(rounds, int(seconds / (_LATENCIES_PER_WINDOW * slowest))))
            lengths = {}
            for case in group:
                length = seconds / windows
                if stretch:
                    wanted = _LATENCIES_PER_WINDOW * latency(case)
                    length = max(length, min(wanted, _MAX_STRETCH * seconds))
                lengths[case] = length
            entries = [
                Measured(case, latencies_per_window=max(1, round(lengths[case])) / latency(case))
                for case in group
            ]
            plans.append((windows, lengths, entries))
        for round_ in range(rounds):
            for windows, lengths, entries in plans:
                if round_ >= windows:
                    continue
                shift = round_ % len(entries)
                for entry in entries[shift:] + entries[:shift]:
                    case = entry.case
                    url = running[case.server].url + case.path
                    pid = running[case.server].pid
                    before, started = cpu_sample(pid), time.monotonic()
                    window = wrk(url, case.body, script, case.concurrency, lengths[case])
                    window.update(cpu_use(before, cpu_sample(pid), time.monotonic() - started))
                    window["drain_s"] = wait_until_quiet(pid)
                    entry.windows.append(window)
    return [entry for _, _, entries in plans for entry in entries]


def median_ratio(top: Measured, bottom: Measured) -> float:
    """The median over rounds of top's req/s over bottom's, in windows of the same round.

    A bottom window that finished no request counts as one request (the ratio is then a lower
    bound, not a division by zero)."""
    pairs = zip(top.windows, bottom.windows, strict=True)
    ratios: list[float] = [a["rps"] / max(b["rps"], 1.0 / b["seconds"]) for a, b in pairs]
    return statistics.median(ratios)
