"""Soak test: a real `dropserve serve` on 127.0.0.1 under mixed load, with hot reloads.

`python -m tests.soak [--duration 60] [--concurrency 64] [--reload-every 10] [--idle-readers 4]
[--quick]`

The script copies the models folder into a temporary directory, starts its own server there
with a random admin token, and drives it with an asyncio + httpx load generator: `concurrency`
clients in closed loop, each sending /v1 predict or uncertainty requests for every model. Every
`--reload-every` seconds it sends `POST /admin/reload`; before the first one it adds a new
version of one model with different weights (its output bias shifted), so that reload really
loads and swaps something a client can tell apart. Every answer is checked against the version
it names: a prediction must equal ONNX Runtime on that version's graph, a seeded uncertainty
answer must equal every other answer to the same body from the same version. Beside them,
`--idle-readers` clients pipeline requests on raw connections and never read an answer, so
unread responses must not pile up in the server. The server's resident memory is read from
/proc/<pid>/status after a warm-up and at the end, while the idle readers still hold their
connections.

It prints a table and `SOAK <name> <value>` lines, and exits 1 when any request failed or an
answer did not match its version (a 503 with Retry-After is back-pressure, counted apart and
allowed), when a reload failed or swapped nothing, when the new version never answered, or when
RSS grew by 10 % or more. Without `--quick` the result is written to
bench/results/soak-<date>.json. Only the server process it started is stopped, by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

from bench.harness.load import free_port
from service.bundle import load_bundle, save_bundle
from service.engines import OnnxEngine
from service.export import export_onnx
from service.training.provenance import onnx_fields
from tests.soak.report import Stats, problems, report, summarise

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO / "bench" / "results"


@dataclass(frozen=True)
class Target:
    """Prepared request bodies for one model, per kind, and the rows of its predict bodies."""

    name: str
    predict: list[bytes]
    uncertainty: list[bytes]
    predict_rows: list[list[float]]


@dataclass
class Expected:
    """What each version must answer: predictions from ONNX Runtime on its graph, and the first
    answer seen to each seeded uncertainty body (any later one must be the same)."""

    predictions: dict[tuple[str, int], np.ndarray]
    uncertainty: dict[tuple[str, int, int], Any]

    def add_version(self, models_dir: Path, target: Target, version: int) -> None:
        bundle = load_bundle(models_dir / target.name / str(version))
        engine = OnnxEngine(bundle, torch.device("cpu"), threads=1)
        engine.load()
        rows = np.asarray(target.predict_rows, dtype=np.float64)
        self.predictions[target.name, version] = engine.predict(rows)

    def mismatch(self, name: str, kind: str, index: int, answer: dict[str, Any]) -> str | None:
        """Why `answer` is not what its version must answer, or None when it is."""
        version = answer["version"]
        assert isinstance(version, int)
        predictions = answer["predictions"]
        if kind == "uncertainty":
            first = self.uncertainty.setdefault((name, version, index), predictions)
            return None if first == predictions else f"{kind}: {name}/{version} answered twice"
        expected = self.predictions.get((name, version))
        if expected is None:
            return f"{kind}: {name}/{version} is not a version on disk"
        values = [p["probabilities"] if isinstance(p, dict) else p for p in predictions]
        if not np.allclose(values, expected[index : index + 1], rtol=1e-6, atol=1e-9):
            return f"{kind}: {name}/{version} does not match that version's graph"
        return None


def dropserve_command() -> list[str]:
    script = Path(sys.executable).parent / "dropserve"
    return [str(script)] if script.exists() else [sys.executable, "-m", "service"]


def rss_mib(pid: int) -> float:
    """Resident set size of `pid` in MiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def newest_bundles(models_dir: Path) -> dict[str, Path]:
    """name -> folder of its newest version (numeric folder names only)."""
    found: dict[str, Path] = {}
    for name_dir in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        versions = [p for p in name_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        if versions:
            found[name_dir.name] = max(versions, key=lambda p: int(p.name))
    return found


def targets(models_dir: Path, samples: int, seed: int) -> list[Target]:
    """Rows drawn around each model's training feature means, as JSON request bodies."""
    rng = random.Random(seed)
    prepared = []
    for name, bundle in newest_bundles(models_dir).items():
        manifest = json.loads((bundle / "manifest.json").read_text())
        norm = manifest["normalization"]
        pairs = list(zip(norm["feature_mean"], norm["feature_std"], strict=True))

        def row(pairs: list[tuple[float, float]] = pairs) -> list[float]:
            return [round(mean + std * rng.gauss(0.0, 1.0), 4) for mean, std in pairs]

        rows = [row() for _ in range(32)]
        predict = [json.dumps({"instances": [values]}).encode() for values in rows]
        uncertainty = [
            json.dumps({"instances": [row()], "samples": samples, "seed": i}).encode()
            for i in range(32)
        ]
        prepared.append(Target(name, predict, uncertainty, rows))
    return prepared


def add_version(models_dir: Path, name: str) -> int:
    """Save the newest bundle of `name`, with its first output's bias shifted by one standard
    unit, as the next version; return that version. `save_bundle` assembles it beside the
    bundles and renames it into place, so a reload never sees half a bundle."""
    source = load_bundle(newest_bundles(models_dir)[name])
    manifest = source.manifest
    network = source.network
    with torch.no_grad():
        network.linears[-1].bias[0] += 1.0
    exported = export_onnx(network, manifest.standardizer(), name=name)
    fields = manifest.model_dump(mode="json", exclude={"version", "files", "created_at"})
    fields["onnx"] = onnx_fields(exported)
    return save_bundle(models_dir, fields, network, exported.onnx_bytes).version


def start_server(
    models_dir: Path, port: int, token: str, log_path: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DROPSERVE_ADMIN_TOKEN": token,
        "DROPSERVE_DEVICE": os.environ.get("DROPSERVE_DEVICE", "cpu"),
        # Access lines at info for every request would cost the server more than the soak.
        "DROPSERVE_LOG_LEVEL": os.environ.get("DROPSERVE_LOG_LEVEL", "warning"),
        # The soak counts what its own reloads swap in; a watcher would get there first.
        "DROPSERVE_WATCH_S": "0",
    }
    command = [*dropserve_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--models-dir", str(models_dir)]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"dropserve exited with {process.returncode} before ready")
            try:
                if client.get("/health/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"dropserve was not ready after {timeout:g} s")


def stop_server(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM the process this script started (by PID); kill it if it does not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


async def client_loop(
    client: httpx.AsyncClient,
    plan: list[Target],
    stats: Stats,
    expected: Expected,
    rng: random.Random,
    predict_share: float,
    stop_at: float,
) -> None:
    while time.monotonic() < stop_at:
        target = rng.choice(plan)
        kind = "predict" if rng.random() < predict_share else "uncertainty"
        bodies = target.predict if kind == "predict" else target.uncertainty
        index = rng.randrange(len(bodies))
        body = bodies[index]
        started = time.perf_counter()
        try:
            response = await client.post(f"/v1/models/{target.name}/{kind}", content=body)
        except httpx.HTTPError as exc:
            stats.errors[f"{kind}: {type(exc).__name__}"] += 1
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status_code == 200:
            answer = response.json()
            wrong = expected.mismatch(target.name, kind, index, answer)
            if wrong is not None:
                stats.errors[wrong] += 1
                continue
            stats.latencies_ms[kind].append(elapsed_ms)
            stats.versions.setdefault(target.name, set()).add(answer["version"])
        elif response.status_code == 503 and "retry-after" in response.headers:
            stats.backpressure += 1
            await asyncio.sleep(min(float(response.headers["retry-after"]), 1.0) / 10)
        else:
            stats.errors[f"{kind}: {response.status_code} {response.text[:160]}"] += 1


async def reload_loop(
    admin: httpx.AsyncClient,
    models_dir: Path,
    bump: Target,
    expected: Expected,
    every: float,
    stats: Stats,
    stop_at: float,
) -> None:
    """POST /admin/reload every `every` s; a new version of `bump` appears before the first."""
    added: str | None = None
    while time.monotonic() + every < stop_at:
        await asyncio.sleep(every)
        if added is None:
            version = await asyncio.to_thread(add_version, models_dir, bump.name)
            expected.add_version(models_dir, bump, version)
            added = f"{bump.name}/{version}"
            stats.added = added
        started = time.perf_counter()
        response = await admin.post("/admin/reload")
        body = response.json()
        stats.reloads.append(
            {
                "status": response.status_code,
                "loaded": body.get("loaded", []),
                "failed": body.get("failed", {}),
                "seconds": round(time.perf_counter() - started, 3),
                "expected": added if len(stats.reloads) == 0 else None,
            }
        )


async def idle_reader(
    port: int, body: bytes, path: str, stats: Stats, stop_at: float
) -> asyncio.StreamWriter | None:
    """Pipeline requests on one connection and never read an answer, reconnecting whenever the
    server drops the connection. The server must bound what such a client costs it: stop reading
    (flow control) or drop the connection, never keep queueing. Returns the last connection,
    still open, or None when the server had just dropped it."""
    request = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < stop_at:
        if writer is None:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        try:
            await asyncio.wait_for(writer.drain(), timeout=max(0.0, stop_at - time.monotonic()))
        except TimeoutError:
            break  # the server stopped reading this connection
        except ConnectionError:
            stats.dropped += 1
            writer.close()
            writer = None
            continue
        stats.unread += 1
    return writer


async def drive(
    base_url: str, token: str, models_dir: Path, args: argparse.Namespace, pid: int
) -> tuple[Stats, dict[str, float]]:
    plan = targets(models_dir, args.samples, args.seed)
    expected = Expected({}, {})
    for target in plan:
        version = int(newest_bundles(models_dir)[target.name].name)
        expected.add_version(models_dir, target, version)
    stats = Stats()
    warmup = Stats()  # the warm-up's requests are not scored, only checked for errors
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=None)
    headers = {"content-type": "application/json"}
    async with (
        httpx.AsyncClient(base_url=base_url, limits=limits, headers=headers, timeout=60) as client,
        httpx.AsyncClient(
            base_url=base_url, headers={"authorization": f"Bearer {token}"}, timeout=120
        ) as admin,
    ):
        memory = {"rss_ready_mib": rss_mib(pid)}
        warm_until = time.monotonic() + args.warmup
        await asyncio.gather(
            *(
                client_loop(
                    client,
                    plan,
                    warmup,
                    expected,
                    random.Random(-i),
                    args.predict_share,
                    warm_until,
                )
                for i in range(args.concurrency)
            )
        )
        stats.errors.update(warmup.errors)
        memory["rss_start_mib"] = rss_mib(pid)
        stop_at = time.monotonic() + args.duration
        port = int(base_url.rsplit(":", 1)[1])
        unread = plan[0].uncertainty[0].replace(b'"seed"', b'"return_samples": true, "seed"')
        results = await asyncio.gather(
            reload_loop(admin, models_dir, plan[0], expected, args.reload_every, stats, stop_at),
            *(
                idle_reader(port, unread, f"/v1/models/{plan[0].name}/uncertainty", stats, stop_at)
                for _ in range(args.idle_readers)
            ),
            *(
                client_loop(
                    client,
                    plan,
                    stats,
                    expected,
                    random.Random(args.seed + i),
                    args.predict_share,
                    stop_at,
                )
                for i in range(args.concurrency)
            ),
        )
        memory["rss_end_mib"] = rss_mib(pid)  # the idle readers still hold their connections
        for writer in results[1 : 1 + args.idle_readers]:
            if isinstance(writer, asyncio.StreamWriter):
                writer.close()
    return stats, memory


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--duration", type=float, default=60.0, help="scored seconds of load")
    parser.add_argument("--warmup", type=float, default=None, help="unscored seconds first")
    parser.add_argument("--concurrency", type=int, default=64, help="clients in closed loop")
    parser.add_argument("--reload-every", type=float, default=10.0, help="seconds between reloads")
    parser.add_argument("--samples", type=int, default=100, help="T of uncertainty requests")
    parser.add_argument("--predict-share", type=float, default=0.7, help="share of predicts")
    parser.add_argument(
        "--idle-readers", type=int, default=4, help="clients that send and never read an answer"
    )
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="do not write bench/results")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = min(5.0, args.duration / 6)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="dropserve-soak-") as tmp:
        models_dir = Path(tmp) / "models"
        shutil.copytree(args.models_dir, models_dir)
        log_path = Path(tmp) / "dropserve.log"
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        process = start_server(models_dir, port, token, log_path)
        try:
            wait_ready(base_url, process)
            print(f"soak: dropserve pid {process.pid} on {base_url}, models {models_dir}")
            stats, memory = asyncio.run(drive(base_url, token, models_dir, args, process.pid))
        except BaseException:
            print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            exit_code = stop_server(process)
        result = summarise(stats, memory, args)
        result["server_exit_code"] = exit_code
    report(result)
    found = problems(result)
    result["problems"] = found
    if not args.quick:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        path = RESULTS_DIR / f"soak-{stamp}.json"
        result["finished_at"] = datetime.now(UTC).isoformat()
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"soak: wrote {path.relative_to(REPO)}")
    for problem in found:
        print(f"soak: FAIL: {problem}", file=sys.stderr)
    return 1 if found else 0
