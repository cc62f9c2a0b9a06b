"""Load for the HTTP suites: servers on 127.0.0.1, one wrk window, waiting out a backlog.

bench/harness/interleave.py arranges these windows into interleaved rounds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "LUA",
    "QUANTILES",
    "REPO",
    "CpuSample",
    "Running",
    "cpu_sample",
    "cpu_use",
    "free_port",
    "servers_running",
    "wait_until_quiet",
    "wrk",
]

REPO = Path(__file__).resolve().parents[2]
# Latency percentiles each window reports; windows are pooled through them (Measured.summary).
QUANTILES = (1, 5, 10, 25, 50, 75, 90, 95, 98, 99, 99.5, 99.9)
_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  local q = {}
  for _, p in ipairs({QUANTILES}) do
    table.insert(q, string.format("[%g, %d]", p, latency:percentile(p)))
  end
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, '
    .. '"min_us": %d, "max_us": %d, "quantiles_us": [%s]}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency.min, latency.max, table.concat(q, ", ")))
end
"""
LUA = _LUA.replace("{QUANTILES}", "{" + ", ".join(f"{q:g}" for q in QUANTILES) + "}")

# After a window the requests wrk abandoned are still running on the server (the naive server's
# backlog at T=100 takes seconds); the next window, on another server, must not share the cores
# with them. So the next window waits until the server's processes use under a tenth of a core.
# /proc counts CPU time in clock ticks (10 ms), so the test is "no tick in two 100 ms samples
# running": under a tenth of a core, and not one tick's rounding.
_QUIET_SAMPLE_S = 0.1
_QUIET_SAMPLES = 2
_QUIET_TIMEOUT_S = 60.0


def _cpu_ticks(root: int) -> int:
    """Clock ticks of CPU time used so far by process `root` and its descendants (/proc)."""
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
    return sum(ticks[pid][1] for pid in tree if pid in ticks)


@dataclass(frozen=True)
class CpuSample:
    """CPU clock ticks so far: of a process tree, and of the whole machine (idle and all)."""

    process: int
    idle: int
    total: int


def cpu_sample(pid: int) -> CpuSample:
    """Ticks of process `pid` with its children, and the machine's from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    return CpuSample(_cpu_ticks(pid), idle=fields[3] + fields[4], total=sum(fields))


def cpu_use(before: CpuSample, after: CpuSample, seconds: float) -> dict[str, float]:
    """Cores the process tree used on average over `seconds`, and the idle share of the
    machine's cores: a server that leaves cores idle with its queue full waits on something
    other than compute (in Python, the GIL)."""
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    machine = max(1, after.total - before.total)
    return {
        "server_cores": (after.process - before.process) / ticks_per_s / seconds,
        "machine_idle": (after.idle - before.idle) / machine,
    }


def wait_until_quiet(pid: int) -> float:
    """Block until process `pid` (with its children) is idle; returns the seconds waited."""
    start = time.monotonic()
    before, quiet = _cpu_ticks(pid), 0
    while quiet < _QUIET_SAMPLES:
        if time.monotonic() - start > _QUIET_TIMEOUT_S:
            print(f"bench: pid {pid} still busy after {_QUIET_TIMEOUT_S:g} s", file=sys.stderr)
            break
        time.sleep(_QUIET_SAMPLE_S)
        after = _cpu_ticks(pid)
        quiet = quiet + 1 if after == before else 0
        before = after
    return time.monotonic() - start


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
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
    ports: set[int] = set()
    try:
        for name, (command, env) in servers.items():
            port = free_port()
            while port in ports:  # freed again before its server binds it: never hand out twice
                port = free_port()
            ports.add(port)
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
        for name, (process, _, log) in started.items():
            # A server that lost its port to another process would pass the check above.
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
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


def wrk(url: str, body: Path, script: Path, concurrency: int, seconds: float) -> dict[str, Any]:
    """One wrk window (one thread, whole seconds) POSTing `body`: req/s, requests, the window's
    length, p50/p99 and the latency percentiles in ms, errors."""
    length = max(1, round(seconds))
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{length}s"]
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
    quantiles = {p: us / 1e3 for p, us in raw["quantiles_us"]}
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "requests": raw["requests"],
        "seconds": length,
        "p50_ms": quantiles[50],
        "p99_ms": quantiles[99],
        # (percentile, ms) from the minimum (0) to the maximum (100)
        "latency_ms": [[0, raw["min_us"] / 1e3], *quantiles.items(), [100, raw["max_us"] / 1e3]],
        "errors": float(raw["non2xx"] + raw["socket_errors"]),
    }
