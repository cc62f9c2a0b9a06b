"""The one place where errors become HTTP responses: `{"error": "...", "request_id": "..."}`
with the right status (the id is the one in the response's `X-Request-ID` header)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import DropserveError, UnauthorizedError
from service.observability import current_request_id

__all__ = [
    "dropserve_error_response",
    "error_body",
    "error_content",
    "install_error_handlers",
    "validation_message",
]

logger = logging.getLogger(__name__)


def error_content(message: str) -> dict[str, str]:
    """The JSON error object: the message, and the request id when serving a request."""
    request_id = current_request_id()
    return (
        {"error": message} if request_id is None else {"error": message, "request_id": request_id}
    )


def error_body(message: str, status: int, **headers: str) -> JSONResponse:
    request_id = current_request_id()
    if request_id is not None:  # the access middleware sets it too, but not on a 500
        headers["X-Request-ID"] = request_id
    return JSONResponse(error_content(message), status_code=status, headers=headers or None)


def _location(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text


def validation_message(errors: Sequence[Any]) -> tuple[int, str]:
    """A status and one readable sentence for pydantic/FastAPI request validation errors."""
    first = errors[0] if errors else {}
    kind = first.get("type", "")
    if kind == "json_invalid":
        detail = first.get("ctx", {}).get("error", "malformed JSON")
        return 400, f"request body is not valid JSON ({detail}); send a JSON object"
    if kind == "missing" and tuple(first.get("loc", ())) == ("body",):
        return 400, 'request body is missing; send a JSON object such as {"instances": [[...]]}'
    problems = []
    for err in errors[:5]:
        where = _location(err.get("loc", ())) or "body"
        if err.get("type") == "extra_forbidden":
            problems.append(f"'{where}' is not a known field; remove it")
        elif err.get("type") == "missing":
            problems.append(f"'{where}' is required")
        else:
            problems.append(f"'{where}': {err.get('msg', 'invalid value')}")
    more = len(errors) - 5
    suffix = f" (and {more} more)" if more > 0 else ""
    return 422, "invalid request: " + "; ".join(problems) + suffix


def _protocol_status(path: str, status: int) -> int:
    # The Open Inference Protocol answers a bad request with 400; its clients (tritonclient)
    # know no 422.
    return 400 if status == 422 and path.startswith("/v2/") else status


def dropserve_error_response(exc: DropserveError, path: str) -> JSONResponse:
    """The response for a domain error raised while serving `path`."""
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    return error_body(exc.message, _protocol_status(path, exc.status_code), **headers)


async def _dropserve_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DropserveError)
    return dropserve_error_response(exc, request.url.path)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    status, message = validation_message(exc.errors())
    return error_body(message, _protocol_status(request.url.path, status))


_FASTAPI_PARSE_ERROR = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    elif exc.status_code == 400 and exc.detail == _FASTAPI_PARSE_ERROR:
        # FastAPI's wording for a body its JSON decoder could not even start on.
        message = (
            "request body could not be parsed: send UTF-8 JSON without extreme nesting or "
            "numbers thousands of digits long"
        )
    else:
        message = str(exc.detail)
    return error_body(message, exc.status_code, **(exc.headers or {}))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Never echo internals to clients; the traceback goes to the log.
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_body("internal server error; the failure was logged", 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DropserveError, _dropserve_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
