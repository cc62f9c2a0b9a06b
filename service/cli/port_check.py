"""Before serving: is the port taken, and by what? A clear refusal instead of uvicorn's bare
"address already in use", saying whether a dropserve server already answers there."""

from __future__ import annotations

import errno
import socket

import httpx

from service.cli.serving import local_url

__all__ = ["busy_port_message", "port_in_use"]

# Long enough for a loaded server on this machine, short enough not to delay the refusal.
_PROBE_TIMEOUT_S = 1.0


def port_in_use(host: str, port: int) -> bool:
    """Whether binding `host`:`port` fails with EADDRINUSE, bound as the server binds it
    (SO_REUSEADDR, so a port in TIME_WAIT after a restart does not count as taken)."""
    if port == 0:  # any free port: never taken
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise  # another failure (no such address, no permission): the server's to report
    return False


def _listener(host: str, port: int) -> str:
    """What answers on the port: a dropserve server and its models, or something else."""
    url = f"{local_url(host, port)}/health/ready"
    try:
        body = httpx.get(url, timeout=_PROBE_TIMEOUT_S).json()
    except (httpx.HTTPError, ValueError):
        return "not a dropserve server: it does not answer GET /health/ready"
    if not isinstance(body, dict) or not isinstance(body.get("models"), dict):
        return "not a dropserve server: its GET /health/ready is not dropserve's"
    models = ", ".join(sorted(body["models"])) or "none yet"
    return f"a dropserve server answers there ({body.get('status')}): models {models}"


def busy_port_message(host: str, port: int) -> str:
    """The refusal for a taken port: what listens, and how to serve new bundles instead."""
    return (
        f"port {port} on {host} is in use ({_listener(host, port)}); a running dropserve server "
        "picks up new bundles in its models folder by itself (DROPSERVE_WATCH_S), or on POST "
        "/admin/reload; use --port to start another server beside it"
    )
