"""A short run of the soak test (tests/soak/): mixed load on a real server with hot reloads and
clients that never read, no failed or mismatched answer, the new bundle version swapped in and
answering, and resident memory flat."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import REPO_ROOT

COMMAND = [
    *("-m", "tests.soak"),
    *("--duration", "6", "--warmup", "1", "--concurrency", "16", "--reload-every", "2"),
    *("--idle-readers", "2"),
    "--quick",
]


def summary_lines(output: str) -> dict[str, float]:
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "SOAK":
            found[parts[1]] = float(parts[2])
    return found


def test_short_soak_has_no_errors_and_flat_memory() -> None:
    completed = subprocess.run(
        [sys.executable, *COMMAND],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    soak = summary_lines(completed.stdout)
    assert soak["requests"] > 0, output
    assert soak["errors"] == 0
    assert soak["p99_ms"] > 0
    assert soak["reloads"] >= 2
    assert soak["failed_reloads"] == 0
    assert soak["reload_swapped"] == 1
    assert soak["new_version_answered"] == 1
    assert soak["unread_requests"] > 0
    assert soak["rss_growth_pct"] < 10
    assert "backpressure_503" in soak
