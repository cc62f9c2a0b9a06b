"""A client that pipelines requests and never reads the answers is dropped, not queued for."""

from __future__ import annotations

import json
import socket
import time

import httpx

from service.hosting.protocol import MAX_PIPELINED
from tests.e2e.conftest import Server

BODY = json.dumps({"instances": [[540, 0, 0, 162, 2.5, 1040, 676, 28]]}).encode()
REQUEST = (
    b"POST /v1/models/concrete/predict HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    b"content-type: application/json\r\ncontent-length: " + str(len(BODY)).encode() + b"\r\n\r\n"
) + BODY


def _answers_until_closed(sock: socket.socket, timeout: float) -> tuple[int, bool]:
    """(answers read, whether the server closed the connection) within `timeout` seconds."""
    sock.settimeout(0.5)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received.count(b"HTTP/1.1 200"), True
        if not chunk:
            return received.count(b"HTTP/1.1 200"), True
        received += chunk
    return received.count(b"HTTP/1.1 200"), False


def test_a_flood_of_pipelined_requests_closes_the_connection(server: Server) -> None:
    host, port = server.base_url.removeprefix("http://").split(":")
    flood = 10 * MAX_PIPELINED
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(REQUEST * flood)
        answered, closed = _answers_until_closed(sock, timeout=10.0)
    assert closed, f"the connection stayed open after {answered} of {flood} answers"
    assert answered < flood
    # The server itself is unaffected.
    assert httpx.get(f"{server.base_url}/health/live", timeout=5.0).status_code == 200


def test_a_few_pipelined_requests_are_all_answered(server: Server) -> None:
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(REQUEST * 4)
        sock.settimeout(10.0)
        received = b""
        while received.count(b"HTTP/1.1 200") < 4:
            chunk = sock.recv(1 << 16)
            assert chunk, f"closed after {received.count(b'HTTP/1.1 200')} answers"
            received += chunk
