"""The one exception the client raises: the server's answer, or why no answer came."""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """A request that did not succeed.

    Attributes:
        status: the HTTP status of the answer, or None when no answer came (the server could not
            be reached, or the request timed out).
        message: the server's own message (the `error` field of its JSON answer), which says
            what was wrong and how to fix it; or what went wrong on the way.
        request_id: the id the server gave the request (its `X-Request-ID`), which names the
            request in the server's log; None when no answer came.
    """

    def __init__(self, status: int | None, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        status = "no answer" if self.status is None else f"HTTP {self.status}"
        request = "" if self.request_id is None else f", request {self.request_id}"
        return f"{self.message} ({status}{request})"
