"""`dropserve serve` on a taken port: a clear refusal, exit 2, before anything loads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def test_taken_port_is_refused_naming_what_listens() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "service", "serve", "--port", str(port), "--processes", "1"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "DROPSERVE_HOST": "127.0.0.1"},
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"dropserve serve: error: port {port} on 127.0.0.1 is in use (not a dropserve server"
    )
    assert "POST /admin/reload; use --port to start another server beside it" in result.stderr
