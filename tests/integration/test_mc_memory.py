"""Peak memory of a long Monte-Carlo request stays bounded, whatever T.

Measured in a fresh process (peak resident set, `ru_maxrss`) so that nothing else this test
session allocated counts: the large benchmark network (64 -> 3 x 512 -> 10), one row,
T=100,000 in 25 chunks of 4,096 passes, then its summaries.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.harness.models import BENCH_MODELS, write_bundle

# What the request may add to the process's peak: its chunk's working set (20-40 MB), its
# draws (T x outputs x 4 bytes, 4 MB) and the summaries' temporaries. Measured 80-100 MB; with
# chunk outputs collected in a list, 204-236 MB (glibc's heap grew a chunk per chunk).
BOUND_MB = 150

_SCRIPT = """
import resource, sys
from pathlib import Path
import numpy as np, torch
from service.bundle import load_bundle
from service.engines.mc_engine import MCDropoutEngine
from service.dataplane.summaries import summarise_requests

torch.set_num_threads(1)
engine = MCDropoutEngine(load_bundle(Path(sys.argv[1])), torch.device("cpu"), 2_097_152)
engine.load()
row = np.random.default_rng(0).normal(size=(1, 64))
summarise_requests(engine.sample(row, 10, seed=1), [1], [0.95], None)  # warm
resident = int(Path("/proc/self/statm").read_text().split()[1]) * 4096
before = max(resident, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
draws = engine.sample(row, 100_000, seed=2)
summarise_requests(draws, [1], [0.95], None)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(tuple(draws.shape), (after - before) / 2**20)
"""


def test_t_100000_on_the_large_network_stays_under_the_bound(tmp_path: Path) -> None:
    write_bundle(tmp_path, BENCH_MODELS["large"])
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "large" / "1")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    shape, growth = done.stdout.strip().rsplit(" ", 1)
    assert shape == "(100000, 1, 10)"
    assert float(growth) < BOUND_MB, f"peak grew {float(growth):.0f} MB (bound {BOUND_MB} MB)"


_SUMMARY_SCRIPT = """
import resource
from pathlib import Path
import torch
from service.dataplane.summaries import summarise_requests

draws = torch.softmax(torch.randn(2000, 1000, 10), dim=-1)  # 80 MB
summarise_requests(draws[:, :2], [2], [0.95], None)  # warm
resident = int(Path("/proc/self/statm").read_text().split()[1]) * 4096
before = max(resident, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
summarise_requests(draws, [1000], [0.95], None)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print((after - before) / 2**20)
"""


def test_summaries_of_the_largest_default_request_stay_small() -> None:
    """1,000 rows x T=2,000 (DROPSERVE_MAX_WORK) of a 10-class model: summarised whole, its
    float64 copies took 325 MB above the draws; a few rows at a time, next to nothing."""
    done = subprocess.run(
        [sys.executable, "-c", _SUMMARY_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    growth = float(done.stdout.strip())
    assert growth < 100, f"summaries raised the peak by {growth:.0f} MB"
