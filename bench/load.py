"""Load generation for the HTTP suites: servers on 127.0.0.1, wrk windows, interleaved rounds.

These machines are shared, and their speed drifts by 15-30 % within a minute. Measuring one
server for 10 s and then the next compares them under different neighbours. So every server of a
suite runs at once, idle but for the one under load, and each measurement is split into short
windows that visit the servers in turn, round after round; a ratio is the median of its
per-round ratios, taken from windows seconds apart.

A window's count undercounts it by about one latency, as wrk's first requests complete only
after one. So a window is kept at least ten latencies long: a slow case gets fewer rounds, and
where even one window of the whole time would be shorter, a longer window (up to six times,
full runs only). The naive server at T=100 (4 s latencies at concurrency 32) is measured over
40 s instead of 10 s, where it had been undercounted by ~40 %. (Little's law on wrk's mean
latency would avoid the bias, but wrk's latencies exceed what its own counts allow.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "LUA",
    "REPO",
    "Case",
    "Measured",
    "Running",
    "interleaved",
    "median_ratio",
    "servers_running",
    "wait_until_quiet",
    "wrk",
]

REPO = Path(__file__).resolve().parents[1]
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

# After a window the requests wrk abandoned are still running on the server (the naive server's
# backlog at T=100 takes seconds); the next window, on another server, must not share the cores
# with them. So the next window waits until the server's processes use under a tenth of a core.
_QUIET_SHARE = 0.1
_QUIET_SAMPLE_S = 0.1
_QUIET_TIMEOUT_S = 60.0
_WARMUP_CONCURRENCY = 4
_LATENCIES_PER_WINDOW = 10
_MAX_STRETCH = 6.0


def _cpu_seconds(root: int) -> float:
    """CPU time used so far by process `root` and its descendants (Linux /proc)."""
    ticks: dict[int, tuple[int, int]] = {}  # pid -> (parent, utime + stime)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        ticks[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in ticks.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    total = sum(ticks[pid][1] for pid in tree if pid in ticks)
    return total / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(pid: int) -> float:
    """Block until process `pid` (with its children) is idle; returns the seconds waited."""
    start = time.monotonic()
    before = _cpu_seconds(pid)
    while time.monotonic() - start < _QUIET_TIMEOUT_S:
        time.sleep(_QUIET_SAMPLE_S)
        after = _cpu_seconds(pid)
        if after - before < _QUIET_SHARE * _QUIET_SAMPLE_S:
            break
        before = after
    return time.monotonic() - start


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Running:
    url: str
    pid: int


@contextmanager
def servers_running(
    servers: dict[str, tuple[list[str], dict[str, str]]], logs: Path
) -> Iterator[dict[str, Running]]:
    """Start every server process at once (`{port}` in a command becomes a free port), wait
    until each answers /health/ready, yield them by name; stop them all by PID."""
    started: dict[str, tuple[subprocess.Popen[bytes], str, Path]] = {}
    try:
        for name, (command, env) in servers.items():
            port = _free_port()
            argv = [arg.replace("{port}", str(port)) for arg in command]
            log = logs / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
                )
            started[name] = (process, f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + 120
        for name, (process, url, log) in started.items():
            while not _ready(url):
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited early: {log.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} was not ready after 120 s")
                time.sleep(0.1)
        yield {name: Running(url, process.pid) for name, (process, url, _) in started.items()}
    finally:
        for process, _, _ in started.values():
            process.send_signal(signal.SIGTERM)
        for process, _, _ in started.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wrk(url: str, body: Path, script: Path, concurrency: int, seconds: float) -> dict[str, float]:
    """One wrk window (one thread) POSTing `body`: req/s, p50/p99 in ms, errors."""
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s"]
    command += ["--timeout", "30s", "-s", str(script), url]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_BODY": str(body)},
        timeout=seconds + 60,
        check=True,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    raw = json.loads(line.removeprefix("RESULT "))
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "errors": float(raw["non2xx"] + raw["socket_errors"]),
    }


@dataclass(frozen=True)
class Case:
    """One load: `path` on server `server` with the JSON `body`, at `concurrency`."""

    server: str
    path: str
    body: Path
    concurrency: int


@dataclass
class Measured:
    """A case's windows, one per round."""

    case: Case
    windows: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Mean req/s (the windows are equally long), median p50 and p99, total errors."""
        return {
            "rps": statistics.fmean(w["rps"] for w in self.windows),
            "p50_ms": statistics.median(w["p50_ms"] for w in self.windows),
            "p99_ms": statistics.median(w["p99_ms"] for w in self.windows),
            "errors": sum(w["errors"] for w in self.windows),
        }


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
    windows (longer where `stretch` and the case is slow, see above).

    A group holds the cases compared with each other (the same load on different servers); a
    round runs every group once, its cases back to back in an order rotated each round, so no
    server always goes first."""
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
                    warm_p50[key] = warm["p50_ms"] / 1e3
                    wait_until_quiet(running[case.server].pid)
        plans = []
        for group in groups:
            # A saturated server's latency grows with the requests in flight.
            latency = max(
                warm_p50[(c.server, c.path, c.body)] * max(1.0, c.concurrency / _WARMUP_CONCURRENCY)
                for c in group
            )
            shortest = _LATENCIES_PER_WINDOW * latency
            windows = max(1, min(rounds, int(seconds / shortest)))
            length = seconds / windows
            if stretch:
                length = max(length, min(shortest, _MAX_STRETCH * seconds))
            plans.append((windows, length, [Measured(case) for case in group]))
        for round_ in range(rounds):
            for windows, length, entries in plans:
                if round_ >= windows:
                    continue
                shift = round_ % len(entries)
                for entry in entries[shift:] + entries[:shift]:
                    case = entry.case
                    url = running[case.server].url + case.path
                    window = wrk(url, case.body, script, case.concurrency, length)
                    window["drain_s"] = wait_until_quiet(running[case.server].pid)
                    entry.windows.append(window)
    return [entry for _, _, entries in plans for entry in entries]


def median_ratio(top: Measured, bottom: Measured, floor_rps: float = 0.0) -> float:
    """The median over rounds of top's req/s over bottom's, in windows of the same round.

    `floor_rps` stands in for a window that finished no request (a ratio that is then a lower
    bound, not a division by zero)."""
    pairs = zip(top.windows, bottom.windows, strict=True)
    return statistics.median(a["rps"] / max(b["rps"], floor_rps) for a, b in pairs)
