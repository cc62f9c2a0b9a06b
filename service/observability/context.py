"""The request being served: its id and what the data plane learned about it.

A `ContextVar` carries it, so log records, error bodies and the access line all see the same
request id without passing it around. Each request runs in its own task (its own copy of the
context), so the value never leaks from one request into another.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass

from service.ids import new_request_id

__all__ = [
    "RequestContext",
    "current_request",
    "current_request_id",
    "enter",
    "request_id_from",
]

# A client's id is kept only when it is short and plain, so it cannot forge log lines.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass
class RequestContext:
    """One HTTP request; the inference fields stay empty until a loaded model was resolved."""

    request_id: str
    model: str | None = None
    version: int | None = None
    mode: str | None = None
    rows: int | None = None
    samples: int | None = None


_CURRENT: ContextVar[RequestContext | None] = ContextVar("dropserve_request", default=None)


def current_request() -> RequestContext | None:
    """The request this code runs for, or None outside a request."""
    return _CURRENT.get()


def current_request_id() -> str | None:
    """The id of the current request, or None outside a request."""
    context = _CURRENT.get()
    return None if context is None else context.request_id


def request_id_from(header: str | None) -> str:
    """The client's `X-Request-ID` when it is 1-128 characters of [A-Za-z0-9._:-], else a new id."""
    if header is not None and _CLIENT_ID.fullmatch(header):
        return header
    return new_request_id()


def enter(context: RequestContext) -> None:
    """Make `context` the current request for the rest of this task."""
    _CURRENT.set(context)
