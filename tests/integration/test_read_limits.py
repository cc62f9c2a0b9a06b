"""Bounds on reading a request, over a real uvicorn server on 127.0.0.1 and raw sockets: the
size of the request head, the time a head or body may take, the connections per process."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request

from bench.harness.load import free_port
from service.config import Settings, get_settings
from service.hosting.server import DrainingServer, uvicorn_config

LIMITS = {
    "max_header_bytes": 4096,
    "max_header_line_bytes": 1024,
    "header_timeout_s": 0.5,
    "body_timeout_s": 0.5,
    "max_connections": 6,
}


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    settings: Settings = get_settings(host="127.0.0.1", port=free_port(), **LIMITS)
    app = echo_app()
    running = DrainingServer(uvicorn_config(app, settings), app)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    yield settings.host, settings.port
    running.should_exit = True
    thread.join(timeout=10)


def exchange(address: tuple[str, int], *parts: bytes, pause_s: float = 0.0) -> bytes:
    """Send `parts` (pausing between them), then read until the server closes or 5 s pass."""
    with socket.create_connection(address, timeout=5) as connection:
        for part in parts:
            try:
                connection.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break  # refused mid-send: the answer is already waiting
            time.sleep(pause_s)
        return read_all(connection)


def read_all(connection: socket.socket) -> bytes:
    received = b""
    while True:
        try:
            chunk = connection.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower()
    assert b"connection: close" in head.lower()
    payload = json.loads(body)
    assert set(payload) == {"error", "request_id"}
    return status, payload["error"]


def get(path: str = "/health/live", headers: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n".encode() + headers + b"\r\n"


def test_a_huge_header_answers_431_without_being_read(server: tuple[str, int]) -> None:
    started = time.monotonic()
    answer = exchange(server, get(headers=b"X-Big: " + b"a" * 2_000_000 + b"\r\n"))
    status, error = status_and_error(answer)
    assert status == 431
    assert "4096 bytes" in error
    assert "DROPSERVE_MAX_HEADER_BYTES" in error
    assert time.monotonic() - started < 2


def test_many_small_headers_over_the_total_answer_431(server: tuple[str, int]) -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(60))
    status, error = status_and_error(exchange(server, get(headers=headers)))
    assert status == 431
    assert "DROPSERVE_MAX_HEADER_BYTES" in error


def test_one_header_over_the_line_limit_answers_431_and_names_it(server: tuple[str, int]) -> None:
    status, error = status_and_error(
        exchange(server, get(headers=b"Cookie: " + b"c" * 2000 + b"\r\n"))
    )
    assert status == 431
    assert "'Cookie'" in error
    assert "1024 bytes" in error


def test_a_url_over_the_line_limit_answers_414(server: tuple[str, int]) -> None:
    status, error = status_and_error(exchange(server, get(path="/health/live?" + "q" * 2000)))
    assert status == 414
    assert "DROPSERVE_MAX_HEADER_LINE_BYTES" in error


def test_heads_under_the_limits_are_served_alone_kept_alive_and_pipelined(
    server: tuple[str, int],
) -> None:
    near = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 900) for i in range(3))  # ~2.8 KB each
    with socket.create_connection(server, timeout=5) as connection:
        for _ in range(3):  # together past 4096 bytes: each head is counted on its own
            connection.sendall(get(headers=near))
            assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        connection.sendall(get(headers=near) + get(headers=b"Connection: close\r\n"))
        assert read_all(connection).count(b"HTTP/1.1 200") == 2


def test_a_body_after_the_head_is_not_counted_as_head(server: tuple[str, int]) -> None:
    body = b"x" * 100_000
    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    answer = exchange(server, head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b'{"bytes":100000}')


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param([], id="bare-connection"),
        pytest.param([b"GET /health/live HTTP/1.1\r\nHost: t\r\n"], id="partial-head"),
        pytest.param([b"G", b"E", b"T", b" ", b"/"], id="dripped-head"),
    ],
)
def test_a_head_that_does_not_arrive_in_time_answers_408(
    server: tuple[str, int], parts: list[bytes]
) -> None:
    started = time.monotonic()
    status, error = status_and_error(exchange(server, *parts, pause_s=0.2))
    assert status == 408
    assert "DROPSERVE_HEADER_TIMEOUT_S" in error
    assert time.monotonic() - started < 3


def test_a_body_that_does_not_arrive_in_time_answers_408(server: tuple[str, int]) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"
    started = time.monotonic()
    status, error = status_and_error(exchange(server, head + b"x" * 10))
    assert status == 408
    assert "DROPSERVE_BODY_TIMEOUT_S" in error
    assert time.monotonic() - started < 3


def test_connections_past_the_limit_answer_503_at_once(server: tuple[str, int]) -> None:
    held = [socket.create_connection(server, timeout=5) for _ in range(LIMITS["max_connections"])]
    try:
        time.sleep(0.1)  # let the server accept them all
        with socket.create_connection(server, timeout=5) as extra:
            answer = read_all(extra)
        status, error = status_and_error(answer)
        assert status == 503
        assert "DROPSERVE_MAX_CONNECTIONS" in error
        assert b"retry-after: 1" in answer.lower()
    finally:
        for connection in held:
            connection.close()
    time.sleep(0.2)  # the server sees them close
    assert exchange(server, get(headers=b"Connection: close\r\n")).startswith(b"HTTP/1.1 200")
