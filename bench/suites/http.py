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

import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness.interleave import Case, Measured, interleaved, median_ratio
from bench.harness.models import BENCH_MODELS, write_bundle
from bench.harness.report import print_ratios, print_table
from bench.suites.base import Options, finish

__all__ = [
    "CPU_COLUMNS",
    "DROPSERVE_ENV",
    "WORKLOADS",
    "HttpSuite",
    "Workload",
    "cpu_cells",
    "dropserve_command",
    "measure",
    "measure_servers",
    "report_ratios",
    "timing",
]


@dataclass(frozen=True)
class Workload:
    """A request body, sent to one model's endpoint; `key` names it in tables and ratios."""

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


def dropserve_command() -> list[str]:
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


def timing(quick: bool) -> tuple[float, int, float]:
    """Seconds per case, rounds (windows) and warm-up seconds."""
    return (1.0, 1, 1.0) if quick else (10.0, 5, 3.0)


def measure_servers(
    servers: dict[str, tuple[list[str], dict[str, str]]],
    loads: Sequence[tuple[Workload, int]],
    quick: bool,
) -> dict[tuple[str, str, int], Measured]:
    """Every (workload, concurrency) on every server, interleaved; keyed (server, key, c)."""
    seconds, rounds, warmup = timing(quick)
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
CPU_COLUMNS = ("server cores", "idle %", "windows")


def cpu_cells(row: dict[str, Any]) -> list[object]:
    """A result row's CPU_COLUMNS cells, "-" where its windows did not measure them."""
    cores, idle = row.get("server_cores"), row.get("machine_idle")
    return [
        "-" if cores is None else round(cores, 2),
        "-" if idle is None else round(100 * idle),
        len(row["windows"]),
    ]


# A window shorter than this many latencies undercounts by over half its rate: its ratios are
# left out (the quick run's 1 s windows on slow cases) rather than printed misleading.
_MIN_LATENCIES_FOR_A_RATIO = 2.0


def report_ratios(
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


def measure(quick: bool = False) -> dict[str, Any]:
    """Run the HTTP benchmark, print its table and RATIO lines, return the results."""
    if shutil.which("wrk") is None:
        raise SystemExit("bench http needs wrk: apt-get install --no-install-recommends wrk")
    python = sys.executable
    uvicorn_args = ["--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]
    servers = {
        # The default server: one process per core (DROPSERVE_PROCESSES=0).
        "dropserve": (dropserve_command(), DROPSERVE_ENV),
        # The same server as one process, the floors' own shape (DROPSERVE_PROCESSES=1).
        "dropserve-1p": ([*dropserve_command(), "--processes", "1"], DROPSERVE_ENV),
        "hello": ([python, "-m", "uvicorn", "bench.servers.hello:app", *uvicorn_args], {}),
        "naive": (
            [python, "-m", "uvicorn", "bench.servers.naive:app", *uvicorn_args],
            {"BENCH_MODELS_DIR": "{models}"},
        ),
    }
    loads = [(workload, c) for workload in WORKLOADS for c in (1, 32)]
    measured = measure_servers(servers, loads, quick)
    rows: list[dict[str, Any]] = [
        {"server": server, "workload": key, "c": c, **m.summary(), "windows": m.windows}
        for (server, key, c), m in measured.items()
    ]
    print_table(
        ["workload", "c", "server", "req/s", "p50 ms", "p99 ms", "errors", *CPU_COLUMNS],
        [
            [
                r["workload"],
                r["c"],
                r["server"],
                r["rps"],
                r["p50_ms"],
                r["p99_ms"],
                int(r["errors"]),
                *cpu_cells(r),
            ]
            for r in sorted(rows, key=lambda r: (r["workload"], r["c"], r["server"]))
        ],
    )
    seconds, _, _ = timing(quick)

    def pair(server: str, key: str, floor: str) -> tuple[Measured, Measured]:
        return measured[(server, key, 32)], measured[(floor, key, 32)]

    ratios = report_ratios(
        {
            "http_W1_vs_hello_c32": pair("dropserve", "W1", "hello"),
            "http_W2_vs_hello_c32": pair("dropserve", "W2", "hello"),
            "http_W3_vs_hello_c32": pair("dropserve", "W3", "hello"),
            "http_W4_vs_naive_c32": pair("dropserve", "W4", "naive"),
            "http_W3_vs_naive_c32": pair("dropserve", "W3", "naive"),
            # One dropserve process against the same one-process floors.
            "http_W1_vs_hello_c32_1process": pair("dropserve-1p", "W1", "hello"),
            "http_W2_vs_hello_c32_1process": pair("dropserve-1p", "W2", "hello"),
            "http_W3_vs_hello_c32_1process": pair("dropserve-1p", "W3", "hello"),
            "http_W4_vs_naive_c32_1process": pair("dropserve-1p", "W4", "naive"),
        }
    )
    return {"quick": quick, "seconds": seconds, "runs": rows, "ratios": ratios}


class HttpSuite:
    """`python -m bench http`: see the module's notes."""

    name = "http"

    def run(self, options: Options) -> int:
        return finish(self.name, measure(quick=options.quick), options)
