"""Ray Serve on a real local Ray cluster: `dropserve serve --ray` with two replicas.

The cluster runs on 127.0.0.1 in a process group of its own (the driver is its leader; Ray keeps
its processes in the driver's group), with a per-run RAY_TMPDIR and one logical GPU that torch
cannot use, so GPU placement is exercised and the replicas must fall back to CPU. The cluster is
stopped with SIGTERM to the driver, never with `ray stop` (that kills Ray processes by name,
machine-wide), and the test checks that none of its processes is left.

Skipped where ray is not installed, unless DROPSERVE_REQUIRE_TOOLS=1 (CI), where that fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.harness.load import free_port
from tests.e2e.conftest import MODELS_DIR, Server, dropserve_command, live_processes

# Cluster start, two replicas, the requests and the shutdown take ~25 s here; fail well before
# the suite's default timeout if Ray hangs.
pytestmark = pytest.mark.timeout(150)

REPLICA_HEADER = "x-dropserve-replica"
FALLBACK_WARNING = "device 'cuda' requested but CUDA is not available; using cpu"
PLACED_ON_GPU = "GPUs from Ray [0], device setting cuda"
STARTUP_TIMEOUT_S = 90.0
# Ray puts Unix sockets ~65 characters deep under RAY_TMPDIR; a socket path has 107 at most.
LONGEST_RAY_TMPDIR = 40

CONCRETE_ROWS = [[540, 0, 0, 162, 2.5, 1040, 676, 28], [332.5, 142.5, 0, 228, 0, 932, 594, 270]]
DIGIT_ROW = [0, 0, 0, 12, 13, 5, 0, 0, 0, 0, 0, 11, 16, 9, 0, 0, 0, 0, 3, 15, 16, 6, 0, 0, 0, 7]
DIGIT_ROW += [15, 16, 16, 2, 0, 0, 0, 0, 1, 16, 16, 3, 0, 0, 0, 0, 1, 16, 16, 6, 0, 0, 0, 0]
DIGIT_ROW += [1, 16, 16, 6, 0, 0, 0, 0, 0, 11, 16, 10, 0, 0]
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/models/concrete/predict", {"instances": CONCRETE_ROWS}),
    ("/v1/models/concrete/uncertainty", {"instances": CONCRETE_ROWS, "samples": 200, "seed": 7}),
    ("/v1/models/digits/predict", {"instances": [DIGIT_ROW]}),
    ("/v1/models/digits/uncertainty", {"instances": [DIGIT_ROW], "samples": 100, "seed": 3}),
]


@dataclass
class RayServe:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ray_tmpdir: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def leftover_processes(pgid: int, marker: str) -> list[str]:
    """Live processes in the driver's group, or whose command line names our RAY_TMPDIR."""
    return [
        f"{p.pid} [{p.state}] {p.cmdline[:160]}"
        for p in live_processes()
        if p.state != "Z" and (p.pgrp == pgid or marker in p.cmdline)
    ]


def wait_for_no_leftovers(pgid: int, marker: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := leftover_processes(pgid, marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def short_ray_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bool]:
    """A per-run RAY_TMPDIR: under pytest's tmp folder when its path is short enough."""
    candidate = tmp_path_factory.mktemp("ray")
    if len(str(candidate)) <= LONGEST_RAY_TMPDIR:
        return candidate, False
    return Path(tempfile.mkdtemp(prefix="dsray-", dir="/tmp")), True


@pytest.fixture(scope="module")
def ray_serve(tmp_path_factory: pytest.TempPathFactory, requires_ray: None) -> Iterator[RayServe]:
    if not Path("/proc/self/stat").exists():
        pytest.skip("checking for leftover Ray processes needs Linux's /proc")
    ray_tmpdir, remove_tmpdir = short_ray_tmpdir(tmp_path_factory)
    log_path = tmp_path_factory.mktemp("ray-serve") / "driver.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DROPSERVE_"))}
    env.update(
        RAY_TMPDIR=str(ray_tmpdir),
        RAY_USAGE_STATS_ENABLED="0",
        # Explicit, so Ray neither warns nor writes a token to ~/.ray: the cluster is loopback
        # only and lives for this test. (Valid values: disabled, token.)
        RAY_AUTH_MODE="disabled",
        # Logical resources: two 1-CPU replicas fit on any machine, and one GPU that torch
        # cannot see (no CUDA here) exercises GPU placement and the CPU fallback.
        RAY_OVERRIDE_RESOURCES=json.dumps({"CPU": 2, "GPU": 1}),
        # Every replica's lines in the driver's log: Ray folds repeated lines by default.
        RAY_DEDUP_LOGS="0",
        DROPSERVE_LOG_FORMAT="text",
    )
    command = [
        *dropserve_command(),
        "serve",
        "--ray",
        "--ray-address",
        "local",
        "--replicas",
        "2",
        "--replica-cpus",
        "1",
        "--replica-gpus",
        "0.5",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--models-dir",
        str(MODELS_DIR),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    handle = RayServe(f"http://127.0.0.1:{port}", process, log_path, ray_tmpdir)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        # `serving on` is logged once serve.run returns: both replicas are running, which
        # under dropserve's deployment means both have loaded their models.
        while "through Ray Serve" not in handle.log():
            assert process.poll() is None, f"the driver exited early:\n{handle.log()}"
            assert time.monotonic() < deadline, f"not serving after 90 s:\n{handle.log()}"
            time.sleep(0.25)
        yield handle
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        # Backstop after a failure: the whole group, by its id (the driver's pid), never by name.
        if leftover_processes(process.pid, str(ray_tmpdir)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.wait(timeout=10)
        if remove_tmpdir:
            shutil.rmtree(ray_tmpdir, ignore_errors=True)


def test_readiness_through_the_ray_proxy(ray_serve: RayServe) -> None:
    answer = httpx.get(f"{ray_serve.base_url}/health/ready", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["models"] == {"concrete": [1], "digits": [1]}
    assert answer.headers[REPLICA_HEADER]
    assert len(answer.headers.get_list("x-request-id")) == 1, "the proxy and app both set it"


def test_both_replicas_answer_as_the_plain_server_does(ray_serve: RayServe, server: Server) -> None:
    answered: dict[str, set[str]] = {}
    with (
        httpx.Client(base_url=ray_serve.base_url, timeout=30) as ray_client,
        httpx.Client(base_url=server.base_url, timeout=30) as plain_client,
    ):
        expected = {path: plain_client.post(path, json=body) for path, body in REQUESTS}
        assert all(answer.status_code == 200 for answer in expected.values())
        for _ in range(25):
            for path, body in REQUESTS:
                answer = ray_client.post(path, json=body)
                assert answer.status_code == 200, answer.text
                assert_same(answer.json(), expected[path].json(), path)
                answered.setdefault(answer.headers[REPLICA_HEADER], set()).add(path)
            if len(answered) == 2 and all(
                len(paths) == len(REQUESTS) for paths in answered.values()
            ):
                break
    assert len(answered) == 2, f"expected both replicas to answer, got {answered}"
    for replica, paths in answered.items():
        assert len(paths) == len(REQUESTS), f"replica {replica} answered only {sorted(paths)}"


def test_replicas_placed_on_the_gpu_fall_back_to_cpu(ray_serve: RayServe) -> None:
    # Ray forwards the replicas' output to the driver by polling their log files: wait a little.
    deadline = time.monotonic() + 15
    while not has_both(log := ray_serve.log()) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert log.count(PLACED_ON_GPU) == 2, log
    assert log.count(FALLBACK_WARNING) >= 2, log
    path, body = REQUESTS[1]
    answer = httpx.post(f"{ray_serve.base_url}{path}", json=body, timeout=30)
    assert answer.json()["device"] == "cpu"


def test_sigterm_stops_the_cluster_and_leaves_no_process(ray_serve: RayServe) -> None:
    process = ray_serve.process
    assert leftover_processes(process.pid, str(ray_serve.ray_tmpdir)), "nothing to stop?"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=45) == 0, ray_serve.log()
    left = wait_for_no_leftovers(process.pid, str(ray_serve.ray_tmpdir), timeout=15)
    assert not left, "Ray processes outlived the driver:\n" + "\n".join(left)
    assert time.monotonic() - started < 45
    assert "removing the dropserve application" in ray_serve.log()


def has_both(log: str) -> bool:
    return log.count(PLACED_ON_GPU) >= 2 and log.count(FALLBACK_WARNING) >= 2


def assert_same(actual: Any, expected: Any, where: str) -> None:
    """Equal structure and strings; floats to 1e-6 relative (torch threads may differ)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert actual.keys() == expected.keys(), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), where
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-6, abs=1e-9), where
    else:
        assert actual == expected, where
