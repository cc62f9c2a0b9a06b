"""Soak test: a real `dropserve serve` on 127.0.0.1 under mixed load, with hot reloads.

`python -m tests.soak [--duration 60] [--concurrency 64] [--reload-every 10] [--quick]`

The script copies the models folder into a temporary directory, starts its own server there
with a random admin token, and drives it with an asyncio + httpx load generator: `concurrency`
clients in closed loop, each sending /v1 predict or uncertainty requests for every model. Every
`--reload-every` seconds it sends `POST /admin/reload`; before the first one it adds a new
version of one model (a copy of its newest bundle), so that reload really loads and swaps
something. The server's resident memory is read from /proc/<pid>/status after a warm-up and at
the end.

It prints a table and `SOAK <name> <value>` lines, and exits 1 when any request failed (a 503
with Retry-After is back-pressure, counted apart and allowed), when a reload failed or swapped
nothing, or when RSS grew by 10 % or more. Without `--quick` the result is written to
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

import httpx

from bench.harness.load import free_port
from service.bundle.digest import compute_digest
from tests.soak.report import Stats, problems, report, summarise

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO / "bench" / "results"


@dataclass(frozen=True)
class Target:
    """Prepared request bodies for one model: (path, body) pairs per kind."""

    name: str
    predict: list[bytes]
    uncertainty: list[bytes]


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

        predict = [json.dumps({"instances": [row()]}).encode() for _ in range(32)]
        uncertainty = [
            json.dumps({"instances": [row()], "samples": samples, "seed": i}).encode()
            for i in range(32)
        ]
        prepared.append(Target(name, predict, uncertainty))
    return prepared


def add_version(models_dir: Path, name: str) -> str:
    """Copy the newest bundle of `name` as the next version; return `name/version`.

    The copy is staged beside the bundles and renamed into place, so a reload never sees half a
    bundle. The weights and graph are unchanged; only the manifest's version (and so its
    digest) differs.
    """
    source = newest_bundles(models_dir)[name]
    version = int(source.name) + 1
    staging = models_dir / name / f".staging-{version}"
    shutil.copytree(source, staging)
    manifest_path = staging / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = version
    manifest["digest"] = compute_digest(manifest)  # the server refuses an unsigned edit
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    staging.rename(models_dir / name / str(version))
    return f"{name}/{version}"


def start_server(
    models_dir: Path, port: int, token: str, log_path: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DROPSERVE_ADMIN_TOKEN": token,
        "DROPSERVE_DEVICE": os.environ.get("DROPSERVE_DEVICE", "cpu"),
        # Access lines at info for every request would cost the server more than the soak.
        "DROPSERVE_LOG_LEVEL": os.environ.get("DROPSERVE_LOG_LEVEL", "warning"),
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
    rng: random.Random,
    predict_share: float,
    stop_at: float,
) -> None:
    while time.monotonic() < stop_at:
        target = rng.choice(plan)
        kind = "predict" if rng.random() < predict_share else "uncertainty"
        body = rng.choice(target.predict if kind == "predict" else target.uncertainty)
        started = time.perf_counter()
        try:
            response = await client.post(f"/v1/models/{target.name}/{kind}", content=body)
        except httpx.HTTPError as exc:
            stats.errors[f"{kind}: {type(exc).__name__}"] += 1
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status_code == 200:
            stats.latencies_ms[kind].append(elapsed_ms)
            stats.versions.setdefault(target.name, set()).add(response.json()["version"])
        elif response.status_code == 503 and "retry-after" in response.headers:
            stats.backpressure += 1
            await asyncio.sleep(min(float(response.headers["retry-after"]), 1.0) / 10)
        else:
            stats.errors[f"{kind}: {response.status_code} {response.text[:160]}"] += 1


async def reload_loop(
    admin: httpx.AsyncClient,
    models_dir: Path,
    bump: str,
    every: float,
    stats: Stats,
    stop_at: float,
) -> None:
    """POST /admin/reload every `every` s; a new version of `bump` appears before the first."""
    added: str | None = None
    while time.monotonic() + every < stop_at:
        await asyncio.sleep(every)
        if added is None:
            added = add_version(models_dir, bump)
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


async def drive(
    base_url: str, token: str, models_dir: Path, args: argparse.Namespace, pid: int
) -> tuple[Stats, dict[str, float]]:
    plan = targets(models_dir, args.samples, args.seed)
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
                client_loop(client, plan, warmup, random.Random(-i), args.predict_share, warm_until)
                for i in range(args.concurrency)
            )
        )
        stats.errors.update(warmup.errors)
        memory["rss_start_mib"] = rss_mib(pid)
        stop_at = time.monotonic() + args.duration
        bump = plan[0].name
        await asyncio.gather(
            reload_loop(admin, models_dir, bump, args.reload_every, stats, stop_at),
            *(
                client_loop(
                    client, plan, stats, random.Random(args.seed + i), args.predict_share, stop_at
                )
                for i in range(args.concurrency)
            ),
        )
        memory["rss_end_mib"] = rss_mib(pid)
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
