"""HTTP benchmark: a real `dropserve serve` under bounded load, beside the HTTP floor and the
naive server, all measured in the same run on 127.0.0.1.

`python -m bench http [--quick]`. Needs `wrk` (Debian package `wrk`). Workloads (bundles with
random weights, see bench/harness/models.py):
  W1 predict, small model, 1 row          W2 predict, large model, 64 rows
  W3 uncertainty T=100, small, 1 row      W4 uncertainty T=100, large, 16 rows
Each runs at concurrency 1 and 32 after a warm-up, against dropserve (one process, and two
sharing the port: `--processes 2`), the FastAPI "hello" floor
(bench/servers/hello.py: parses the same JSON, returns a constant) and the naive server
(bench/servers/naive.py: torch eval / a Python loop of T passes). All servers run at once and
each case is measured in windows interleaved with the other servers'
(see bench/harness/interleave.py); a ratio is the median of its per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.capacity import engine_capacity
from bench.harness.interleave import Case, Measured, interleaved, median_ratio
from bench.harness.models import BENCH_MODELS, write_bundle
from bench.harness.report import print_ratios, print_table, save_results

__all__ = ["WORKLOADS", "main", "main_batching", "run", "run_batching"]


@dataclass(frozen=True)
class Workload:
    key: str
    model: str
    endpoint: str
    rows: int
    samples: int | None = None

    def body(self) -> bytes:
        features = BENCH_MODELS[self.model].config.n_features
        rows = np.random.default_rng(0).normal(size=(self.rows, features)).round(4).tolist()
        payload: dict[str, Any] = {"instances": rows}
        if self.samples is not None:
            payload["samples"] = self.samples
        return json.dumps(payload).encode()

    @property
    def path(self) -> str:
        return f"/v1/models/{self.model}/{self.endpoint}"


WORKLOADS = (
    Workload("W1", "small", "predict", 1),
    Workload("W2", "large", "predict", 64),
    Workload("W3", "small", "uncertainty", 1, 100),
    Workload("W4", "large", "uncertainty", 16, 100),
)


# The same server settings in every suite: CPU, one intra-op thread per worker.
DROPSERVE_ENV = {
    "DROPSERVE_TORCH_THREADS": "1",
    "DROPSERVE_ONNX_THREADS": "1",
    "DROPSERVE_DEVICE": "cpu",
}


def _dropserve_command() -> list[str]:
    """`dropserve serve` on a free port ({port}) over the suite's models ({models}), quiet."""
    return [
        sys.executable,
        "-m",
        "service",
        "serve",
        "--port",
        "{port}",
        "--models-dir",
        "{models}",
        "--log-level",
        "warning",
    ]


def _rounds(quick: bool) -> tuple[float, int, float]:
    """Seconds per case, rounds (windows) and warm-up seconds."""
    return (1.0, 1, 1.0) if quick else (10.0, 5, 3.0)


def _measure(
    servers: dict[str, tuple[list[str], dict[str, str]]],
    loads: Sequence[tuple[Workload, int]],
    quick: bool,
) -> dict[tuple[str, str, int], Measured]:
    """Every (workload, concurrency) on every server, interleaved; keyed (server, key, c)."""
    seconds, rounds, warmup = _rounds(quick)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        models = work / "models"
        for name in ("small", "large"):
            write_bundle(models, BENCH_MODELS[name])
        groups, keys = [], {}
        for workload, concurrency in loads:
            body = work / f"{workload.key}.json"
            body.write_bytes(workload.body())
            keys[body] = workload.key
            groups.append([Case(name, workload.path, body, concurrency) for name in servers])
        commands = {
            name: (
                [arg.replace("{models}", str(models)) for arg in command],
                {key: value.replace("{models}", str(models)) for key, value in env.items()},
            )
            for name, (command, env) in servers.items()
        }
        measured = interleaved(
            commands,
            groups,
            work,
            seconds=seconds,
            rounds=rounds,
            warmup=warmup,
            stretch=not quick,  # the smoke run keeps to its time
        )
    return {(m.case.server, keys[m.case.body], m.case.concurrency): m for m in measured}


# Where the load went: the server's cores in use (its process tree), the machine's idle share
# (wrk takes some of the rest), and the number of windows.
_CPU_COLUMNS = ("server cores", "idle %", "windows")


def _cpu_cells(row: dict[str, Any]) -> list[object]:
    cores, idle = row.get("server_cores"), row.get("machine_idle")
    return [
        "-" if cores is None else round(cores, 2),
        "-" if idle is None else round(100 * idle),
        len(row["windows"]),
    ]


# A window shorter than this many latencies undercounts by over half its rate: its ratios are
# left out (the quick run's 1 s windows on slow cases) rather than printed misleading.
_MIN_LATENCIES_FOR_A_RATIO = 2.0


def _ratios(
    pairs: dict[str, tuple[Measured, Measured]], others: dict[str, float] | None = None
) -> dict[str, float]:
    """Median per-round throughput ratios of `pairs` (plus `others`), printed as RATIO lines;
    a pair with a window too short for its latency is named and left out."""
    ratios: dict[str, float] = {}
    for name, (top, bottom) in pairs.items():
        spans = min(top.latencies_per_window, bottom.latencies_per_window)
        if spans < _MIN_LATENCIES_FOR_A_RATIO:
            print(f"note: {name} left out: its windows span {spans:.1f} latencies")
            continue
        ratios[name] = median_ratio(top, bottom)
    ratios.update(others or {})
    print()
    print_ratios(ratios)
    return ratios


def run(quick: bool = False) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench http needs wrk: apt-get install --no-install-recommends wrk")
    python = sys.executable
    uvicorn_args = ["--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]
    servers = {
        "dropserve": (_dropserve_command(), DROPSERVE_ENV),
        # The same server as two processes sharing the port (DROPSERVE_PROCESSES=2).
        "dropserve-2p": ([*_dropserve_command(), "--processes", "2"], DROPSERVE_ENV),
        "hello": ([python, "-m", "uvicorn", "bench.servers.hello:app", *uvicorn_args], {}),
        "naive": (
            [python, "-m", "uvicorn", "bench.servers.naive:app", *uvicorn_args],
            {"BENCH_MODELS_DIR": "{models}"},
        ),
    }
    loads = [(workload, c) for workload in WORKLOADS for c in (1, 32)]
    measured = _measure(servers, loads, quick)
    rows: list[dict[str, Any]] = [
        {"server": server, "workload": key, "c": c, **m.summary(), "windows": m.windows}
        for (server, key, c), m in measured.items()
    ]
    print_table(
        ["workload", "c", "server", "req/s", "p50 ms", "p99 ms", "errors", *_CPU_COLUMNS],
        [
            [
                r["workload"],
                r["c"],
                r["server"],
                r["rps"],
                r["p50_ms"],
                r["p99_ms"],
                int(r["errors"]),
                *_cpu_cells(r),
            ]
            for r in sorted(rows, key=lambda r: (r["workload"], r["c"], r["server"]))
        ],
    )
    seconds, _, _ = _rounds(quick)

    def pair(server: str, key: str, floor: str) -> tuple[Measured, Measured]:
        return measured[(server, key, 32)], measured[(floor, key, 32)]

    ratios = _ratios(
        {
            "http_W1_vs_hello_c32": pair("dropserve", "W1", "hello"),
            "http_W2_vs_hello_c32": pair("dropserve", "W2", "hello"),
            "http_W3_vs_hello_c32": pair("dropserve", "W3", "hello"),
            "http_W4_vs_naive_c32": pair("dropserve", "W4", "naive"),
            "http_W3_vs_naive_c32": pair("dropserve", "W3", "naive"),
            # Two dropserve processes against the one-process floor: what the machine serves.
            "http_W1_vs_hello_c32_2processes": pair("dropserve-2p", "W1", "hello"),
            "http_W2_vs_hello_c32_2processes": pair("dropserve-2p", "W2", "hello"),
            "http_W3_vs_hello_c32_2processes": pair("dropserve-2p", "W3", "hello"),
            "http_W4_vs_naive_c32_2processes": pair("dropserve-2p", "W4", "naive"),
        }
    )
    return {"quick": quick, "seconds": seconds, "runs": rows, "ratios": ratios}


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
# And both with two processes (DROPSERVE_PROCESSES=2, one inference thread each): one process
# leaves a quarter of the CPU idle here, its workers stalled on the GIL by the event loop's Python.
PROCESS_VARIANTS = {
    "off, 2 processes": {"DROPSERVE_BATCHING": "false", "DROPSERVE_PROCESSES": "2"},
    "on, 2 processes": {"DROPSERVE_BATCHING": "true", "DROPSERVE_PROCESSES": "2"},
}
# Batches of this many one-row requests time the engine's ceiling (bench/capacity.py): about
# what the batcher forms at concurrency 32 with two workers.
CEILING_BATCH = 16


def run_batching(quick: bool = False) -> dict[str, Any]:
    """Single-row T=100 uncertainty requests at concurrency 32 on the large model (the issue's
    case) and the small one (W3), dynamic batching off, on (default window) and on with a
    2 ms window, in the same run."""
    if shutil.which("wrk") is None:
        raise SystemExit("bench batching needs wrk: apt-get install --no-install-recommends wrk")
    variants = (
        BATCHING_VARIANTS if quick else {**BATCHING_VARIANTS, **AUTO_VARIANTS, **PROCESS_VARIANTS}
    )
    servers = {
        variant: (_dropserve_command(), {**DROPSERVE_ENV, **extra})
        for variant, extra in variants.items()
    }
    measured = _measure(servers, [(BATCHING_WORKLOAD, 32), (WORKLOADS[2], 32)], quick)
    ceiling = _ceiling(quick)
    print(f"engine ceiling, large model, batches of {CEILING_BATCH}, no HTTP: {ceiling:.0f} req/s")
    model = {BATCHING_WORKLOAD.key: BATCHING_WORKLOAD.model, WORKLOADS[2].key: WORKLOADS[2].model}
    rows: list[dict[str, Any]] = [
        {"model": model[key], "batching": variant, **m.summary(), "windows": m.windows}
        for (variant, key, _), m in measured.items()
    ]
    print_table(
        ["model", "batching", "req/s", "p50 ms", "p99 ms", "errors", *_CPU_COLUMNS],
        [
            [
                r["model"],
                r["batching"],
                r["rps"],
                r["p50_ms"],
                r["p99_ms"],
                int(r["errors"]),
                *_cpu_cells(r),
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
        two = "2 processes"
        pairs["batching_2processes_throughput_on_vs_off"] = (
            of(large, f"on, {two}"),
            of(large, f"off, {two}"),
        )
        # What the machine serves against the default server with batching off.
        pairs["batching_on_2processes_vs_off_1process"] = (
            of(large, f"on, {two}"),
            of(large, "off"),
        )
    ratios = _ratios(pairs, others)
    seconds, _, _ = _rounds(quick)
    return {
        "quick": quick,
        "seconds": seconds,
        "runs": rows,
        "ceiling_rps": ceiling,
        "ratios": ratios,
    }


def _ceiling(quick: bool) -> float:
    """The engine's ceiling for the large batching case (bench/capacity.py), fp32 as served."""
    with tempfile.TemporaryDirectory() as folder:
        models = Path(folder)
        write_bundle(models, BENCH_MODELS[BATCHING_WORKLOAD.model])
        samples = BATCHING_WORKLOAD.samples or 100
        return engine_capacity(
            models, BATCHING_WORKLOAD.model, samples, CEILING_BATCH, 1.0 if quick else 6.0
        )


def main_batching(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench batching", description=run_batching.__doc__
    )
    parser.add_argument(
        "--quick", action="store_true", help="one 1 s window per case instead of 10 s in five"
    )
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    results = run_batching(quick=args.quick)
    if not args.no_save:
        print(f"results: {save_results('batching', results)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench http", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="one 1 s window per case instead of 10 s in five"
    )
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    results = run(quick=args.quick)
    if not args.no_save:
        print(f"results: {save_results('http', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
