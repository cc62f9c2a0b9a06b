"""Batching benchmark: one dropserve server with dynamic batching off and on, in the same run.

`python -m bench batching [--quick]`. Needs `wrk`. Single-row T=100 uncertainty requests at
concurrency 32 on the large model and on the small one (W3 of the http suite), with batching
off, on (the default window) and on with a 2 ms window, each with the default server processes
(one per core); the full run adds those with DROPSERVE_PRECISION=auto and with one process.
The servers are measured in interleaved windows as in the http suite, beside the engine's
ceiling without HTTP (bench/suites/capacity.py).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.harness.interleave import Measured
from bench.harness.models import BENCH_MODELS, write_bundle
from bench.harness.report import print_table
from bench.suites.base import Options, finish
from bench.suites.capacity import engine_capacity
from bench.suites.http import (
    CPU_COLUMNS,
    DROPSERVE_ENV,
    WORKLOADS,
    Workload,
    cpu_cells,
    dropserve_command,
    measure_servers,
    report_ratios,
    timing,
)

__all__ = ["BATCHING_VARIANTS", "BatchingSuite", "measure"]


BATCHING_WORKLOAD = Workload("B1", "large", "uncertainty", 1, 100)


BATCHING_VARIANTS = {
    "off": {"DROPSERVE_BATCHING": "false"},
    "on": {"DROPSERVE_BATCHING": "true"},  # the default window: 0 ms
    "on, 2 ms": {"DROPSERVE_BATCHING": "true", "DROPSERVE_BATCH_MAX_DELAY_MS": "2"},
}
# The full run also compares both with DROPSERVE_PRECISION=auto (bf16 for the large model on a
# CPU with native bf16), where stacking pays more in the engine.
AUTO_VARIANTS = {
    "off, auto": {"DROPSERVE_BATCHING": "false", "DROPSERVE_PRECISION": "auto"},
    "on, auto": {"DROPSERVE_BATCHING": "true", "DROPSERVE_PRECISION": "auto"},
}
# And both with one process (DROPSERVE_PROCESSES=1): it leaves a quarter of a 2-core CPU idle,
# its workers stalled on the GIL by the event loop's Python, which batching partly makes up for.
PROCESS_VARIANTS = {
    "off, 1 process": {"DROPSERVE_BATCHING": "false", "DROPSERVE_PROCESSES": "1"},
    "on, 1 process": {"DROPSERVE_BATCHING": "true", "DROPSERVE_PROCESSES": "1"},
}
# Batches of this many one-row requests time the engine's ceiling (bench/suites/capacity.py):
# about what the batcher forms at concurrency 32 with two workers.
CEILING_BATCH = 16


def measure(quick: bool = False) -> dict[str, Any]:
    """Run the batching benchmark, print its tables and RATIO lines, return the results."""
    if shutil.which("wrk") is None:
        raise SystemExit("bench batching needs wrk: apt-get install --no-install-recommends wrk")
    variants = (
        BATCHING_VARIANTS if quick else {**BATCHING_VARIANTS, **AUTO_VARIANTS, **PROCESS_VARIANTS}
    )
    servers = {
        variant: (dropserve_command(), {**DROPSERVE_ENV, **extra})
        for variant, extra in variants.items()
    }
    measured = measure_servers(servers, [(BATCHING_WORKLOAD, 32), (WORKLOADS[2], 32)], quick)
    ceiling = _ceiling(quick)
    print(f"engine ceiling, large model, batches of {CEILING_BATCH}, no HTTP: {ceiling:.0f} req/s")
    model = {BATCHING_WORKLOAD.key: BATCHING_WORKLOAD.model, WORKLOADS[2].key: WORKLOADS[2].model}
    rows: list[dict[str, Any]] = [
        {"model": model[key], "batching": variant, **m.summary(), "windows": m.windows}
        for (variant, key, _), m in measured.items()
    ]
    print_table(
        ["model", "batching", "req/s", "p50 ms", "p99 ms", "errors", *CPU_COLUMNS],
        [
            [
                r["model"],
                r["batching"],
                r["rps"],
                r["p50_ms"],
                r["p99_ms"],
                int(r["errors"]),
                *cpu_cells(r),
            ]
            for r in rows
        ],
    )

    def of(key: str, variant: str) -> Measured:
        return measured[(variant, key, 32)]

    def p99(key: str, variant: str) -> float:
        return of(key, variant).summary()["p99_ms"]

    large, small = BATCHING_WORKLOAD.key, WORKLOADS[2].key
    pairs = {
        "batching_throughput_on_vs_off": (of(large, "on"), of(large, "off")),
        "batching_2ms_throughput_vs_off": (of(large, "on, 2 ms"), of(large, "off")),
        "batching_small_throughput_on_vs_off": (of(small, "on"), of(small, "off")),
    }
    others = {
        "batching_p99_on_vs_off": p99(large, "on") / p99(large, "off"),
        "batching_small_p99_on_vs_off": p99(small, "on") / p99(small, "off"),
        # The most any batching could reach here: the engine alone against the server off.
        "batching_ceiling_vs_off": ceiling / of(large, "off").summary()["rps"],
    }
    if not quick:
        pairs["batching_auto_throughput_on_vs_off"] = (
            of(large, "on, auto"),
            of(large, "off, auto"),
        )
        others["batching_auto_p99_on_vs_off"] = p99(large, "on, auto") / p99(large, "off, auto")
        one = "1 process"
        pairs["batching_1process_throughput_on_vs_off"] = (
            of(large, f"on, {one}"),
            of(large, f"off, {one}"),
        )
        # The default server with batching on against one process with it off.
        pairs["batching_on_vs_off_1process"] = (of(large, "on"), of(large, f"off, {one}"))
    ratios = report_ratios(pairs, others)
    seconds, _, _ = timing(quick)
    return {
        "quick": quick,
        "seconds": seconds,
        "runs": rows,
        "ceiling_rps": ceiling,
        "ratios": ratios,
    }


def _ceiling(quick: bool) -> float:
    """The engine's ceiling for the large batching case (engine_capacity), fp32 as served."""
    with tempfile.TemporaryDirectory() as folder:
        models = Path(folder)
        write_bundle(models, BENCH_MODELS[BATCHING_WORKLOAD.model])
        samples = BATCHING_WORKLOAD.samples or 100
        return engine_capacity(
            models, BATCHING_WORKLOAD.model, samples, CEILING_BATCH, 1.0 if quick else 6.0
        )


class BatchingSuite:
    """`python -m bench batching`: see the module's notes."""

    name = "batching"

    def run(self, options: Options) -> int:
        return finish(self.name, measure(quick=options.quick), options)
