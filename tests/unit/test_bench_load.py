"""The HTTP benchmark's load helpers: waiting out a server's backlog, and per-round ratios."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.load import Case, Measured, median_ratio, wait_until_quiet

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


def test_the_ratio_is_the_median_of_per_round_ratios() -> None:
    case = Case("s", "/p", Path("b.json"), 32)

    def windows(*rps: float) -> Measured:
        return Measured(
            case, [{"rps": r, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0.0} for r in rps]
        )

    # Round 2 ran while a neighbour slowed the machine: both servers lost speed together.
    top, bottom = windows(200.0, 50.0, 210.0), windows(100.0, 25.0, 100.0)
    assert median_ratio(top, bottom) == pytest.approx(2.0)
    assert top.summary()["rps"] == pytest.approx(460.0 / 3)
    # A window that finished nothing counts as the floor, not a division by zero.
    assert median_ratio(windows(10.0), windows(0.0), floor_rps=0.5) == pytest.approx(20.0)
