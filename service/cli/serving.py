"""Where a new bundle version will answer, printed by `train` and `import` after its path."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from service.config import Settings

__all__ = ["local_url", "served_at"]

# A server listening on every interface is reached on this machine at the loopback address.
_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def local_url(host: str, port: int) -> str:
    """The base URL that reaches a server listening on `host`:`port` from this machine."""
    host = _ANY.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def served_at(settings: Settings, models_dir: Path, name: str, version: int) -> str:
    """One line: the version's URL under the configured host and port, and how a server on
    `models_dir` comes to serve it (by watching, or by a reload when watching is off)."""
    url = f"{local_url(settings.host, settings.port)}/v1/models/{quote(name, safe='')}"
    url += f"/versions/{version}"
    if settings.watch_s > 0:
        how = f"a running server picks it up within {settings.watch_s:g} s (DROPSERVE_WATCH_S)"
    else:
        how = "watching is off (DROPSERVE_WATCH_S=0): POST /admin/reload on a running server"
    return f"  serving at {url} by a server on {models_dir}; {how}"
