"""`python -m bench scaling`: how throughput grows with the server's processes.

W1 (one-row predictions of the small model) and W4 (16-row uncertainty of the large one) at
concurrency 32 against `dropserve serve` with 1, 2 and all processes (`DROPSERVE_PROCESSES=0`,
one per core), interleaved as the http suite does. The ratios are each count's throughput over
one process's: on N cores the ideal is N. Meant to be rerun on bigger machines, where the
default's gain over one process is largest.
"""

from __future__ import annotations

from typing import Any

from bench.harness.report import print_table
from bench.suites.base import Options, finish
from bench.suites.http import (
    CPU_COLUMNS,
    DROPSERVE_ENV,
    WORKLOADS,
    cpu_cells,
    dropserve_command,
    measure_servers,
    report_ratios,
    timing,
)
from service.resources import available_cpus

__all__ = ["ScalingSuite", "measure"]

_KEYS = ("W1", "W4")


def _counts() -> list[int]:
    cores = available_cpus()
    return sorted({1, min(2, cores), cores})


def measure(quick: bool = False) -> dict[str, Any]:
    """Run the scaling benchmark, print its table and RATIO lines, return the results."""
    counts = _counts()
    servers = {
        f"{n}p": ([*dropserve_command(), "--processes", str(n)], DROPSERVE_ENV) for n in counts
    }
    loads = [(workload, 32) for workload in WORKLOADS if workload.key in _KEYS]
    measured = measure_servers(servers, loads, quick)
    rows: list[dict[str, Any]] = [
        {"server": server, "workload": key, "c": c, **m.summary(), "windows": m.windows}
        for (server, key, c), m in measured.items()
    ]
    print_table(
        ["workload", "processes", "req/s", "p50 ms", "p99 ms", "errors", *CPU_COLUMNS],
        [
            [
                r["workload"],
                r["server"].removesuffix("p"),
                r["rps"],
                r["p50_ms"],
                r["p99_ms"],
                int(r["errors"]),
                *cpu_cells(r),
            ]
            for r in sorted(rows, key=lambda r: (r["workload"], int(r["server"][:-1])))
        ],
    )
    ratios = report_ratios(
        {
            f"scaling_{key}_{n}processes_vs_1": (
                measured[(f"{n}p", key, 32)],
                measured[("1p", key, 32)],
            )
            for key in _KEYS
            for n in counts
            if n > 1
        }
    )
    seconds, _, _ = timing(quick)
    return {
        "quick": quick,
        "seconds": seconds,
        "cores": available_cpus(),
        "runs": rows,
        "ratios": ratios,
    }


class ScalingSuite:
    """`python -m bench scaling`: see the module's notes."""

    name = "scaling"

    def run(self, options: Options) -> int:
        return finish(self.name, measure(quick=options.quick), options)
