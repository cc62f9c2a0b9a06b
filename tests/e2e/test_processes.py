"""`dropserve serve --processes 2`: a supervisor and two workers on one port, for real.

Each worker also exposes its own metrics port (METRICS_PORT + index), which is how these tests
see each worker's state: what it loaded and how many requests it answered.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.resources import available_cpus
from tests.e2e.conftest import (
    Server,
    live_processes,
    poll_until_ready,
    start_server,
    stop_server,
)
from tests.factories import make_bundle

TOKEN = "processes-admin-token"
ROW = [[0.5, -1.0, 2.0]]


def _consecutive_free_ports() -> int:
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise AssertionError("no two consecutive free ports")


def workers(supervisor: int) -> list[int]:
    """PIDs of the supervisor's spawned worker processes (not multiprocessing's helpers)."""
    return sorted(
        p.pid for p in live_processes() if p.ppid == supervisor and "spawn_main" in p.cmdline
    )


def worker_metrics(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def loaded(port: int) -> set[str]:
    pattern = r'dropserve_model_loaded\{model="([^"]+)",version="(\d+)"\} 1\.0'
    return {f"{m}/{v}" for m, v in re.findall(pattern, worker_metrics(port))}


def answered(port: int) -> float:
    pattern = r'dropserve_http_requests_total\{endpoint="/v1/models/\{name\}/predict".*?\} (\S+)'
    return sum(float(v) for v in re.findall(pattern, worker_metrics(port)))


def wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, int]]:
    models = tmp_path_factory.mktemp("models")
    make_bundle(models, name="toyreg", seed=1)
    metrics_port = _consecutive_free_ports()
    env = {
        "DROPSERVE_PROCESSES": "2",
        "DROPSERVE_METRICS_PORT": str(metrics_port),
        "DROPSERVE_ADMIN_TOKEN": TOKEN,
        "DROPSERVE_DEVICE": "cpu",
        "DROPSERVE_WARMUP_ROUNDS": "1",
        # No watching: the admin action and SIGHUP must be what reaches every process, and a
        # version added without a reload must stay unserved.
        "DROPSERVE_WATCH_S": "0",
    }
    log = tmp_path_factory.mktemp("processes") / "dropserve.log"
    server = start_server(log, env, models_dir=models)
    try:
        poll_until_ready(server)
        for index in range(2):
            wait_for(lambda i=index: loaded(metrics_port + i) == {"toyreg/1"})
        yield server, models, metrics_port
    finally:
        stop_server(server)


def test_two_workers_share_the_port_and_answer_alike(cluster: tuple[Server, Path, int]) -> None:
    server, _, metrics_port = cluster
    assert len(workers(server.process.pid)) == 2
    answers = set()
    for _ in range(30):  # a fresh connection each time: the kernel hands it to either worker
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            response = client.post("/v1/models/toyreg/predict", json={"instances": ROW})
            assert response.status_code == 200
            answers.add(response.content)
    assert len(answers) == 1
    assert answered(metrics_port) + answered(metrics_port + 1) >= 30


def test_admin_reload_and_sighup_reach_every_worker(cluster: tuple[Server, Path, int]) -> None:
    server, models, metrics_port = cluster
    make_bundle(models, name="toyreg", seed=2)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    reloaded = httpx.post(f"{server.base_url}/admin/reload", headers=auth, timeout=60)
    assert reloaded.status_code == 200, reloaded.text
    assert [p["status"] for p in reloaded.json()["processes"]] == ["ok", "ok"]
    for index in range(2):  # no waiting: every worker has acted by the time of the answer
        assert "toyreg/2" in loaded(metrics_port + index)
    make_bundle(models, name="other", seed=3)
    os.kill(server.process.pid, signal.SIGHUP)
    for index in range(2):
        wait_for(lambda i=index: "other/1" in loaded(metrics_port + i))


def test_unload_and_load_of_one_model_reach_every_worker(
    cluster: tuple[Server, Path, int],
) -> None:
    server, _, metrics_port = cluster
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = httpx.post(f"{server.base_url}/admin/models/toyreg/unload", headers=auth, timeout=60)
    assert answer.status_code == 200, answer.text
    for index in range(2):
        assert not any(key.startswith("toyreg/") for key in loaded(metrics_port + index))
    answer = httpx.post(f"{server.base_url}/admin/models/toyreg/load", headers=auth, timeout=60)
    assert answer.status_code == 200, answer.text
    for index in range(2):
        assert "toyreg/1" in loaded(metrics_port + index)


def test_a_dead_worker_is_replaced(cluster: tuple[Server, Path, int]) -> None:
    server, _, metrics_port = cluster
    before = workers(server.process.pid)
    os.kill(before[0], signal.SIGKILL)
    wait_for(lambda: len(set(workers(server.process.pid)) - set(before)) == 1)
    for index in range(2):
        wait_for(lambda i=index: "toyreg/1" in loaded(metrics_port + i))
    response = httpx.post(f"{server.base_url}/v1/models/toyreg/predict", json={"instances": ROW})
    assert response.status_code == 200
    assert "exited with code -9; restarting it" in server.log()


def restarts(port: int) -> int:
    found = re.search(r"^dropserve_process_restarts (\d+)\.0$", worker_metrics(port), re.M)
    assert found is not None
    return int(found[1])


def test_a_restarted_worker_serves_what_its_siblings_serve(
    cluster: tuple[Server, Path, int],
) -> None:
    server, models, metrics_port = cluster
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = httpx.post(f"{server.base_url}/admin/models/toyreg/unload", headers=auth, timeout=60)
    assert answer.status_code == 200, answer.text
    # A version lands in the folder without a reload: the workers do not serve it, so the
    # restarted one must not either.
    make_bundle(models, name="late", seed=4)
    expected = loaded(metrics_port)
    assert expected == loaded(metrics_port + 1)
    assert not any(key.startswith(("toyreg/", "late/")) for key in expected)
    counts = [restarts(metrics_port + index) for index in range(2)]
    os.kill(workers(server.process.pid)[0], signal.SIGKILL)

    def restarted() -> int | None:
        for index in range(2):
            try:
                if restarts(metrics_port + index) > counts[index]:
                    return index
            except (httpx.TransportError, AssertionError):
                continue  # that worker's metrics port is not up yet
        return None

    wait_for(lambda: restarted() is not None)
    index = restarted()
    assert index is not None
    wait_for(lambda: loaded(metrics_port + index) == expected)
    wait_for(lambda: httpx.get(f"{server.base_url}/health/ready", timeout=5).status_code == 200)
    answer = httpx.post(f"{server.base_url}/admin/models/toyreg/load", headers=auth, timeout=60)
    assert answer.status_code == 200, answer.text


def test_sigterm_stops_every_worker_and_exits_0(tmp_path: Path) -> None:
    models = tmp_path / "models"
    make_bundle(models, name="toyreg", seed=1)
    env = {"DROPSERVE_PROCESSES": "3", "DROPSERVE_DEVICE": "cpu", "DROPSERVE_WARMUP_ROUNDS": "1"}
    server = start_server(tmp_path / "log", env, models_dir=models)
    try:
        poll_until_ready(server)
        pids = workers(server.process.pid)
        assert len(pids) == 3
    finally:
        code = stop_server(server)
    assert code == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)


def test_ctrl_c_reaching_every_process_lets_requests_finish(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals the whole process group, supervisor and workers at once; the
    supervisor must not add a second SIGINT, on which uvicorn abandons requests in flight."""
    models = tmp_path / "models"
    make_bundle(models, name="toyreg", seed=1)
    env = {
        "DROPSERVE_PROCESSES": "2",
        "DROPSERVE_DEVICE": "cpu",
        "DROPSERVE_WARMUP_ROUNDS": "1",
        # Many small chunks of many passes: a request that takes seconds on any machine.
        "DROPSERVE_MC_CHUNK_ELEMENTS": "1024",
        "DROPSERVE_MAX_SAMPLES": "40000",
        "DROPSERVE_MAX_WORK": "8000000",
        # On a loaded machine that request took 34 s; what is tested is that Ctrl-C lets it
        # finish, not how long the grace period is, so neither limit may cut it short.
        "DROPSERVE_SHUTDOWN_GRACE_S": "300",
        "DROPSERVE_REQUEST_TIMEOUT_S": "300",
    }
    server = start_server(tmp_path / "log", env, models_dir=models)
    try:
        poll_until_ready(server)
        pids = workers(server.process.pid)
        slow = {"instances": ROW * 200, "samples": 40_000, "seed": 1}
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(
                httpx.post,
                f"{server.base_url}/v1/models/toyreg/uncertainty",
                json=slow,
                timeout=300,
            )
            time.sleep(0.5)
            assert not answer.done()
            for pid in [*pids, server.process.pid]:
                os.kill(pid, signal.SIGINT)
            response = answer.result()
            assert response.status_code == 200, (response.text, server.log())
        assert server.process.wait(timeout=60) == 0, server.log()
        assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    finally:
        stop_server(server)  # the process we started, whatever failed above


def test_processes_0_runs_one_per_core_the_server_may_use(tmp_path: Path) -> None:
    """DROPSERVE_PROCESSES=0 counts the cores this server may run on (its affinity, here pinned
    to two, and any cgroup quota), not the host's."""
    models = tmp_path / "models"
    make_bundle(models, name="toyreg", seed=1)
    env = {"DROPSERVE_PROCESSES": "0", "DROPSERVE_DEVICE": "cpu", "DROPSERVE_WARMUP_ROUNDS": "1"}
    own = os.sched_getaffinity(0)
    pinned = set(sorted(own)[:2])
    expected = min(len(pinned), available_cpus())
    os.sched_setaffinity(0, pinned)  # the server inherits it
    try:
        server = start_server(tmp_path / "log", env, models_dir=models)
    finally:
        os.sched_setaffinity(0, own)
    try:
        poll_until_ready(server)
        spawned = workers(server.process.pid)
        assert len(spawned) == (expected if expected > 1 else 0)
        response = httpx.post(
            f"{server.base_url}/v1/models/toyreg/predict", json={"instances": ROW}
        )
        assert response.status_code == 200
    finally:
        assert stop_server(server) == 0
    if expected > 1:
        assert f"dropserve: {expected} processes" in server.log()


def test_metrics_on_the_main_port_answer_for_every_process(tmp_path: Path) -> None:
    """Whichever process takes a scrape, it reports all of them, labelled by process: the
    counters add up to every request sent, so none seems to reset between scrapes."""
    models = tmp_path / "models"
    make_bundle(models, name="toyreg", seed=1)
    env = {"DROPSERVE_PROCESSES": "2", "DROPSERVE_DEVICE": "cpu", "DROPSERVE_WARMUP_ROUNDS": "1"}
    server = start_server(tmp_path / "log", env, models_dir=models)
    predict = 'dropserve_http_requests_total{endpoint="/v1/models/{name}/predict"'
    try:
        poll_until_ready(server)
        wait_for(lambda: len(workers(server.process.pid)) == 2)
        for _ in range(40):  # fresh connections: the kernel spreads them over both processes
            answer = httpx.post(
                f"{server.base_url}/v1/models/toyreg/predict", json={"instances": ROW}
            )
            assert answer.status_code == 200

        def predictions(text: str) -> dict[str, float]:
            counts: dict[str, float] = {}
            for line in text.splitlines():
                if line.startswith(predict):
                    process = re.search(r'process="(\d)"', line)
                    assert process is not None, line
                    counts[process[1]] = counts.get(process[1], 0.0) + float(line.split()[-1])
            return counts

        def scrape() -> str:
            return httpx.get(f"{server.base_url}/metrics", timeout=10).text

        # A request is counted just after its answer leaves: wait for the last one.
        wait_for(lambda: sum(predictions(scrape()).values()) == 40)
        seen = set()
        for _ in range(8):
            text = scrape()
            counts = predictions(text)
            assert sum(counts.values()) == 40, counts
            assert "dropserve_metrics_processes_missing 0.0" in text
            seen |= set(re.findall(r'dropserve_model_loaded\{.*process="(\d)"', text))
        assert seen == {"0", "1"}
    finally:
        assert stop_server(server) == 0


def test_the_default_server_runs_one_process_per_core_and_says_why(server: Server) -> None:
    # `server` is the session's default `dropserve serve`, started without DROPSERVE_PROCESSES.
    cores = available_cpus()
    found = re.search(rf"(\d+) server process\(es\): one per core: {cores} available", server.log())
    assert found, server.log()
    count = int(found[1])
    assert 1 <= count <= cores  # fewer only where the log says memory allows fewer
    if count < cores:
        assert "memory allows" in server.log()
    if count > 1:
        assert len(workers(server.process.pid)) == count
