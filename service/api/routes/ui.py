"""The playground page: static files from service/api/ui, served by dropserve itself.

Only the files listed here are served, each with a Content-Security-Policy that allows nothing
but this origin, so the page cannot load (or send data to) anything else.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response

__all__ = ["CONTENT_SECURITY_POLICY", "router"]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files that change with the package: revalidate rather than serve a stale page.
    "Cache-Control": "no-cache",
}
_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "card.js": "text/javascript; charset=utf-8",
    "chart.js": "text/javascript; charset=utf-8",
    "results.js": "text/javascript; charset=utf-8",
    "image.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

router = APIRouter(include_in_schema=False)


def _read(name: str) -> bytes:
    # Read per request (a few kB): an edited file shows on reload, with no restart.
    return (resources.files("service.api") / "ui" / name).read_bytes()


def _asset(name: str) -> Response:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404)
    return Response(_read(name), media_type=media_type, headers=_HEADERS)


@router.get("/")
@router.get("/ui")
async def to_playground() -> RedirectResponse:
    # Relative, so that the redirect also works behind a proxy that mounts dropserve on a prefix.
    return RedirectResponse("ui/", status_code=307)


@router.get("/ui/")
async def playground() -> Response:
    return _asset("index.html")


@router.get("/ui/{name}")
async def playground_asset(name: str) -> Response:
    return _asset(name)
