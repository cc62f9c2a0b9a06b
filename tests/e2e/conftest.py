"""A real `dropserve serve` process on 127.0.0.1 with the committed default models."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bench.harness.load import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"


def dropserve_command() -> list[str]:
    """The installed console script next to this interpreter, else the module entry point."""
    script = Path(sys.executable).parent / "dropserve"
    if script.exists():
        return [str(script)]
    found = shutil.which("dropserve")
    return [found] if found else [sys.executable, "-m", "service"]


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    state: str
    ppid: int
    pgrp: int
    cmdline: str


def live_processes() -> Iterator[ProcessInfo]:
    """Every process this user can read in /proc, with its parent, group and command line."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        state, ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        cmdline = raw.replace(b"\0", b" ").decode("utf-8", "replace")
        yield ProcessInfo(int(entry.name), state, int(ppid), int(pgrp), cmdline)


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    readiness: list[int] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    log_path: Path, env: dict[str, str], *extra: str, models_dir: Path = MODELS_DIR
) -> Server:
    port = free_port()
    command = [
        *dropserve_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--models-dir",
        str(models_dir),
        *extra,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
    return Server(f"http://127.0.0.1:{port}", process, log_path)


def stop_server(server: Server) -> int:
    """SIGTERM the process we started (by PID) and wait for it; kill it if it hangs."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)
    return server.process.returncode


def poll_until_ready(server: Server, timeout: float = 120.0) -> None:
    """Record every readiness answer from the first connection until the first 200."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise AssertionError(f"dropserve exited early:\n{server.log()}")
            try:
                status = client.get("/health/ready").status_code
            except httpx.TransportError:
                time.sleep(0.01)
                continue
            server.readiness.append(status)
            if status == 200:
                return
            time.sleep(0.01)
    raise AssertionError(f"dropserve was not ready after {timeout}s:\n{server.log()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Heavy warm-up (many large MC passes) keeps the loading window wide enough to observe the
    # readiness 503 before the 200, whatever the machine's speed.
    env = {
        "DROPSERVE_WARMUP_ROUNDS": "40",
        "DROPSERVE_DEFAULT_SAMPLES": "5000",
        "DROPSERVE_DEVICE": "cpu",
    }
    log_path = tmp_path_factory.mktemp("server") / "dropserve.log"
    server = start_server(log_path, env)
    try:
        poll_until_ready(server)
        yield server
    finally:
        stop_server(server)
