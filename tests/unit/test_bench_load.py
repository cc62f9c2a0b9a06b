"""The HTTP benchmark's load helpers: waiting out a backlog, per-round ratios, pooled latencies."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.harness.interleave import Case, Measured, median_ratio, pooled_percentile
from bench.harness.load import LUA, QUANTILES, cpu_sample, cpu_use, wait_until_quiet, wrk
from tests.conftest import require_program

# A parent that starts a child which spins for `SPIN` seconds, then both idle.
SPIN = 1.0
BUSY_CHILD = f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import time\\nend = time.monotonic() + {SPIN}\\nwhile time.monotonic() < end: pass"])
child.wait()
time.sleep(30)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_waits_until_the_process_and_its_children_are_idle() -> None:
    process = subprocess.Popen([sys.executable, "-c", BUSY_CHILD])
    try:
        time.sleep(0.3)  # the child is spinning by now
        waited = wait_until_quiet(process.pid)
        assert waited > 0.3  # it waited for the child's spin, not only the idle parent
        assert waited < SPIN + 5.0
        assert wait_until_quiet(process.pid) < 0.5  # idle now: returns after one sample
    finally:
        process.kill()
        process.wait()


def _own_ticks(pid: int) -> int:
    """utime + stime of `pid` alone, read here independently of bench.harness.load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc")
def test_cpu_use_counts_a_spinning_child() -> None:
    process = subprocess.Popen([sys.executable, "-c", BUSY_CHILD])
    try:
        time.sleep(0.2)  # the child is spinning by now
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        (child,) = [int(pid) for pid in children]
        child_before = _own_ticks(child)
        before, started = cpu_sample(process.pid), time.monotonic()
        time.sleep(0.6)
        after, child_after = cpu_sample(process.pid), _own_ticks(child)
        seconds = time.monotonic() - started
        use = cpu_use(before, after, seconds)
        child_cores = (child_after - child_before) / os.sysconf("SC_CLK_TCK") / seconds
    finally:
        process.kill()
        process.wait()
    # The child's cores (one when the machine is free, less when it is busy), within the
    # ticks' 10 ms rounding and the few ms between the two reads.
    assert child_cores > 0.1, "the child did not run"
    assert abs(use["server_cores"] - child_cores) < 0.1
    assert 0.0 <= use["machine_idle"] <= 1.0


def test_the_summary_averages_cpu_use_over_time() -> None:
    short = {**window(100, seconds=1), "server_cores": 2.0, "machine_idle": 0.0}
    long = {**window(100, seconds=3), "server_cores": 1.0, "machine_idle": 0.4}
    summary = measured(short, long).summary()
    assert summary["server_cores"] == pytest.approx(1.25)
    assert summary["machine_idle"] == pytest.approx(0.3)
    assert "server_cores" not in measured(window(100)).summary()  # not measured, not made up


def window(
    rps: float, seconds: int = 2, latency_ms: list[list[float]] | None = None
) -> dict[str, Any]:
    grid = latency_ms or [[0, 1.0], [50, 2.0], [99, 4.0], [100, 5.0]]
    return {
        "rps": rps,
        "requests": round(rps * seconds),
        "seconds": seconds,
        "latency_ms": grid,
        "errors": 0.0,
    }


def measured(*windows: dict[str, Any]) -> Measured:
    return Measured(Case("s", "/p", Path("b.json"), 32), list(windows))


def test_the_ratio_is_the_median_of_per_round_ratios() -> None:
    # Round 2 ran while a neighbour slowed the machine: both servers lost speed together.
    top = measured(window(200.0), window(50.0), window(210.0))
    bottom = measured(window(100.0), window(25.0), window(100.0))
    assert median_ratio(top, bottom) == pytest.approx(2.0)
    assert top.summary()["rps"] == pytest.approx(460.0 / 3)
    # A window that finished nothing counts as one request in its 4 s, not a division by zero.
    assert median_ratio(measured(window(10.0, 4)), measured(window(0.0, 4))) == pytest.approx(40.0)


def test_pooled_percentiles_weight_each_window_by_its_requests() -> None:
    # Uniform latencies on [0, 10] ms (300 requests) and on [10, 20] ms (100 requests).
    fast = window(150.0, latency_ms=[[p, p / 10] for p in (0, 25, 50, 75, 100)])
    slow = window(50.0, latency_ms=[[p, 10 + p / 10] for p in (0, 25, 50, 75, 100)])
    windows = [fast, slow]
    rng = np.random.default_rng(0)
    pooled = np.concatenate([rng.uniform(0, 10, 300_000), rng.uniform(10, 20, 100_000)])
    for q in (50, 90, 99):
        assert pooled_percentile(windows, q) == pytest.approx(np.percentile(pooled, q), rel=0.01)
    assert pooled_percentile([window(0.0)], 99) == 0.0  # no request, no latency


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # wrk drops its connections mid-request when its window ends


def test_a_wrk_window_reports_its_rate_and_latency_percentiles(tmp_path: Path) -> None:
    require_program("wrk")
    server = _QuietServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        body, script = tmp_path / "body.json", tmp_path / "post.lua"
        body.write_text('{"instances": [[1.0]]}')
        script.write_text(LUA)
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        result = wrk(url, body, script, concurrency=2, seconds=1)
    finally:
        server.shutdown()
        server.server_close()
    assert result["requests"] > 0
    assert result["errors"] == 0
    assert result["seconds"] == 1
    # wrk's own duration: the 1 s window plus its start and stop
    assert result["requests"] / 1.5 < result["rps"] <= result["requests"] * 1.01
    percentiles = [p for p, _ in result["latency_ms"]]
    assert percentiles == [0, *QUANTILES, 100]
    latencies = [ms for _, ms in result["latency_ms"]]
    assert latencies == sorted(latencies)
    assert 0 < result["p50_ms"] <= result["p99_ms"]
