"""`python -m bench memory`: the resident memory of the server with 1, 2, 4 and 8 processes.

Each count is started alone over a models folder (the default bundles, then the large benchmark
model), warmed by its readiness, and measured from /proc: RSS of every process of the tree
(supervisor and workers) and PSS, which splits pages shared between processes (the copy-on-write
pages of the shared libraries) among them, so that the PSS total is what the server costs the
machine. The per-process figure is the workers' mean RSS.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.harness.load import REPO, servers_running
from bench.harness.models import BENCH_MODELS, write_bundle
from bench.harness.report import print_table
from bench.suites.base import Options, finish
from bench.suites.http import DROPSERVE_ENV, dropserve_command

__all__ = ["MemorySuite", "measure", "tree_memory"]

_MIB = 1 << 20


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _kib(path: Path, field: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def tree_memory(root: int) -> dict[str, Any]:
    """RSS and PSS (MiB) of `root` and its descendants, and the workers' mean RSS."""
    pids, queue = [], [root]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        queue += _children(pid)
    rss = {pid: _kib(Path(f"/proc/{pid}/status"), "VmRSS:") / 1024 for pid in pids}
    pss = {pid: _kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss:") / 1024 for pid in pids}
    # Workers are the processes that serve: all but the supervisor, and multiprocessing's
    # resource tracker, which holds no models.
    workers = [pid for pid in pids if pid != root and rss[pid] > 100] or [root]
    return {
        "processes": len(pids),
        "rss_mib": sum(rss.values()),
        "pss_mib": sum(pss.values()),
        "worker_rss_mib": sum(rss[pid] for pid in workers) / len(workers),
    }


def measure(quick: bool = False) -> dict[str, Any]:
    """Measure, print the table, return the results."""
    counts = (1, 2) if quick else (1, 2, 4, 8)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        large = work / "large"
        write_bundle(large, BENCH_MODELS["large"])
        defaults = work / "default"
        shutil.copytree(REPO / "models", defaults)
        for label, models in (("default models", defaults), ("large model", large)):
            for count in counts:
                command = [
                    arg.replace("{models}", str(models))
                    for arg in [*dropserve_command(), "--processes", str(count)]
                ]
                with servers_running({"dropserve": (command, DROPSERVE_ENV)}, work) as running:
                    rows.append(
                        {"models": label, "count": count, **tree_memory(running["dropserve"].pid)}
                    )
    print_table(
        ["models", "server processes", "worker RSS MiB", "total RSS MiB", "total PSS MiB"],
        [
            [
                r["models"],
                r["count"],
                round(r["worker_rss_mib"]),
                round(r["rss_mib"]),
                round(r["pss_mib"]),
            ]
            for r in rows
        ],
    )
    return {"quick": quick, "runs": rows}


class MemorySuite:
    """`python -m bench memory`: see the module's notes."""

    name = "memory"

    def run(self, options: Options) -> int:
        return finish(self.name, measure(quick=options.quick), options)
