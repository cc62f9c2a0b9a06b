"""API keys on the model endpoints, checked before a body is read."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import error_body
from service.api.security import PROTECTED_PREFIXES, bearer_token, matches_secret

__all__ = ["ApiKeyMiddleware"]


class ApiKeyMiddleware:
    """Require one of the configured keys (`Authorization: Bearer` or `X-API-Key`) on model
    endpoints. Installed only when keys are configured."""

    def __init__(self, app: ASGIApp, keys: Sequence[SecretStr]) -> None:
        self.app = app
        self.keys = list(keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = headers.get("x-api-key") or bearer_token(headers.get("authorization"))
        if not matches_secret(key, self.keys):
            response = error_body(
                "this endpoint needs an API key: send 'X-API-Key: <key>' or "
                "'Authorization: Bearer <key>'",
                401,
                **{"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
