"""The interactive API documentation, Swagger UI at /docs and ReDoc at /redoc, served offline.

FastAPI's own pages load their scripts from a CDN, so on a machine without internet they stay
blank. Here the scripts and styles come from the `fastapi-offline` package (a maintained wheel
of Swagger UI 5 and ReDoc builds) and are served by dropserve itself, like the playground.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

__all__ = ["ASSETS", "router"]

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# Each page starts its viewer with an inline script; everything it loads is this origin's own.
# ReDoc runs its search in a worker made from a blob, and both draw icons from data: URLs.
_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {"Content-Security-Policy": _CONTENT_SECURITY_POLICY}
# The assets change only with the package's version: let browsers keep them for a day.
_ASSET_HEADERS = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}

router = APIRouter(include_in_schema=False)


def _urls(request: Request) -> tuple[str, str]:
    """The OpenAPI document and the assets folder, under the proxy's prefix if any."""
    root = request.scope.get("root_path", "").rstrip("/")
    return f"{root}{request.app.openapi_url}", f"{root}/docs/assets"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    openapi, assets = _urls(request)
    page = get_swagger_ui_html(
        openapi_url=openapi,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
        # No badge from the public validator: it would send the document off the machine.
        swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True},
    )
    page.headers.update(_PAGE_HEADERS)
    return page


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    openapi, assets = _urls(request)
    page = get_redoc_html(
        openapi_url=openapi,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png",
        with_google_fonts=False,
    )
    page.headers.update(_PAGE_HEADERS)
    return page


@router.get("/docs/assets/{name}")
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404)
    body = (resources.files("fastapi_offline") / "static" / name).read_bytes()
    return Response(body, media_type=media_type, headers=_ASSET_HEADERS)
