"""HTTP benchmark: a real `dropserve serve` under bounded load, beside the HTTP floor and the
naive server, all measured in the same run on 127.0.0.1.

`python -m bench http [--quick]`. Needs `wrk` (Debian package `wrk`). Workloads (bundles with
random weights, see bench/models.py):
  W1 predict, small model, 1 row          W2 predict, large model, 64 rows
  W3 uncertainty T=100, small, 1 row      W4 uncertainty T=100, large, 16 rows
Each runs at concurrency 1 and 32 after a warm-up, against dropserve (one process, and two
sharing the port: `--processes 2`), the FastAPI "hello" floor
(bench/servers/hello.py: parses the same JSON, returns a constant) and the naive server
(bench/servers/naive.py: torch eval / a Python loop of T passes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.models import BENCH_MODELS, write_bundle
from bench.report import print_ratios, print_table, save_results

__all__ = ["WORKLOADS", "main", "main_batching", "run", "run_batching"]

REPO = Path(__file__).resolve().parents[1]
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


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


def _dropserve_command(models: Path) -> list[str]:
    """`dropserve serve` on a free port ({port}) over `models`, quiet."""
    return [
        sys.executable,
        "-m",
        "service",
        "serve",
        "--port",
        "{port}",
        "--models-dir",
        str(models),
        "--log-level",
        "warning",
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _server(command: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    """Start a server process, wait for /health/ready, yield its URL; stop it by PID."""
    port = _free_port()
    argv = [arg.replace("{port}", str(port)) for arg in command]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited early: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{argv} was not ready after 120 s")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wrk(url: str, body: Path, script: Path, concurrency: int, seconds: float) -> dict[str, float]:
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{round(seconds)}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
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
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "errors": float(raw["non2xx"] + raw["socket_errors"]),
    }


def run(quick: bool = False) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench http needs wrk: apt-get install --no-install-recommends wrk")
    seconds = 2.0 if quick else 10.0
    warmup = 1.0 if quick else 3.0
    python = sys.executable
    uvicorn_args = ["--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        models = work / "models"
        for name in ("small", "large"):
            write_bundle(models, BENCH_MODELS[name])
        script = work / "post.lua"
        script.write_text(LUA)
        bodies = {}
        for workload in WORKLOADS:
            bodies[workload.key] = work / f"{workload.key}.json"
            bodies[workload.key].write_bytes(workload.body())
        servers = {
            "dropserve": (_dropserve_command(models), DROPSERVE_ENV),
            # The same server as two processes sharing the port (DROPSERVE_PROCESSES=2).
            "dropserve-2p": ([*_dropserve_command(models), "--processes", "2"], DROPSERVE_ENV),
            "hello": ([python, "-m", "uvicorn", "bench.servers.hello:app", *uvicorn_args], {}),
            "naive": (
                [python, "-m", "uvicorn", "bench.servers.naive:app", *uvicorn_args],
                {"BENCH_MODELS_DIR": str(models)},
            ),
        }
        for server, (command, env) in servers.items():
            with _server(command, env, work / f"{server}.log") as url:
                for workload in WORKLOADS:
                    target = f"{url}/v1/models/{workload.model}/{workload.endpoint}"
                    _wrk(target, bodies[workload.key], script, 4, warmup)
                    for concurrency in (1, 32):
                        stats = _wrk(target, bodies[workload.key], script, concurrency, seconds)
                        rows.append(
                            {"server": server, "workload": workload.key, "c": concurrency, **stats}
                        )
                        print(
                            f"  {server} {workload.key} c={concurrency}: {stats['rps']:.0f} req/s",
                            flush=True,
                        )
    print_table(
        ["workload", "c", "server", "req/s", "p50 ms", "p99 ms", "errors"],
        [
            [
                r["workload"],
                r["c"],
                r["server"],
                r["rps"],
                r["p50_ms"],
                r["p99_ms"],
                int(r["errors"]),
            ]
            for r in sorted(rows, key=lambda r: (r["workload"], r["c"], r["server"]))
        ],
    )

    def rps(server: str, key: str, concurrency: int = 32) -> float:
        found: float = next(
            r["rps"]
            for r in rows
            if (r["server"], r["workload"], r["c"]) == (server, key, concurrency)
        )
        # A server that finished no request in the window (the naive one on W4 in a quick
        # run: 32 loops of T passes share its thread pool) counts as one, so the ratio is a
        # lower bound rather than a division by zero.
        return found or 1.0 / seconds

    ratios = {
        "http_W1_vs_hello_c32": rps("dropserve", "W1") / rps("hello", "W1"),
        "http_W2_vs_hello_c32": rps("dropserve", "W2") / rps("hello", "W2"),
        "http_W3_vs_hello_c32": rps("dropserve", "W3") / rps("hello", "W3"),
        "http_W4_vs_naive_c32": rps("dropserve", "W4") / rps("naive", "W4"),
        "http_W3_vs_naive_c32": rps("dropserve", "W3") / rps("naive", "W3"),
        # Two dropserve processes against the one-process floor: what the machine serves.
        "http_W1_vs_hello_c32_2processes": rps("dropserve-2p", "W1") / rps("hello", "W1"),
        "http_W2_vs_hello_c32_2processes": rps("dropserve-2p", "W2") / rps("hello", "W2"),
        "http_W3_vs_hello_c32_2processes": rps("dropserve-2p", "W3") / rps("hello", "W3"),
        "http_W4_vs_naive_c32_2processes": rps("dropserve-2p", "W4") / rps("naive", "W4"),
    }
    print()
    print_ratios(ratios)
    return {"quick": quick, "seconds": seconds, "runs": rows, "ratios": ratios}


BATCHING_WORKLOAD = Workload("B1", "large", "uncertainty", 1, 100)


BATCHING_VARIANTS = {
    "off": {"DROPSERVE_BATCHING": "false"},
    "on": {"DROPSERVE_BATCHING": "true"},  # the default window: 0 ms
    "on, 2 ms": {"DROPSERVE_BATCHING": "true", "DROPSERVE_BATCH_MAX_DELAY_MS": "2"},
}


def run_batching(quick: bool = False) -> dict[str, Any]:
    """Single-row T=100 uncertainty requests at concurrency 32 on the large model (the issue's
    case) and the small one (W3), dynamic batching off, on (default window) and on with a
    2 ms window, in the same run."""
    if shutil.which("wrk") is None:
        raise SystemExit("bench batching needs wrk: apt-get install --no-install-recommends wrk")
    seconds = 2.0 if quick else 10.0
    rows: list[dict[str, Any]] = []
    workloads = (BATCHING_WORKLOAD, WORKLOADS[2])
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        models = work / "models"
        for name in ("small", "large"):
            write_bundle(models, BENCH_MODELS[name])
        script = work / "post.lua"
        script.write_text(LUA)
        for workload in workloads:
            body = work / f"{workload.key}.json"
            body.write_bytes(workload.body())
            for variant, extra in BATCHING_VARIANTS.items():
                env = {**DROPSERVE_ENV, **extra}
                log = work / f"batching-{workload.key}-{len(rows)}.log"
                with _server(_dropserve_command(models), env, log) as url:
                    target = f"{url}/v1/models/{workload.model}/uncertainty"
                    _wrk(target, body, script, 4, 1.0)
                    stats = _wrk(target, body, script, 32, seconds)
                    rows.append({"model": workload.model, "batching": variant, **stats})
                    print(f"  {workload.model} {variant}: {stats['rps']:.0f} req/s", flush=True)
    print_table(
        ["model", "batching", "req/s", "p50 ms", "p99 ms", "errors"],
        [
            [r["model"], r["batching"], r["rps"], r["p50_ms"], r["p99_ms"], int(r["errors"])]
            for r in rows
        ],
    )

    def run_of(model: str, variant: str) -> dict[str, Any]:
        return next(r for r in rows if (r["model"], r["batching"]) == (model, variant))

    off, on = run_of("large", "off"), run_of("large", "on")
    ratios = {
        "batching_throughput_on_vs_off": on["rps"] / off["rps"],
        "batching_p99_on_vs_off": on["p99_ms"] / off["p99_ms"],
        "batching_2ms_throughput_vs_off": run_of("large", "on, 2 ms")["rps"] / off["rps"],
        "batching_small_throughput_on_vs_off": (
            run_of("small", "on")["rps"] / run_of("small", "off")["rps"]
        ),
        "batching_small_p99_on_vs_off": (
            run_of("small", "on")["p99_ms"] / run_of("small", "off")["p99_ms"]
        ),
    }
    print()
    print_ratios(ratios)
    return {"quick": quick, "seconds": seconds, "runs": rows, "ratios": ratios}


def main_batching(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench batching", description=run_batching.__doc__
    )
    parser.add_argument("--quick", action="store_true", help="2 s per run instead of 10 s")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    results = run_batching(quick=args.quick)
    if not args.no_save:
        print(f"results: {save_results('batching', results)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench http", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s per run instead of 10 s")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    results = run(quick=args.quick)
    if not args.no_save:
        print(f"results: {save_results('http', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
