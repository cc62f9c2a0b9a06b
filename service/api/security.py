"""Credentials: the admin bearer token and the optional API keys of the model endpoints.

Secrets are compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.deps import SettingsDep
from service.api.error_handlers import error_body
from service.errors import ForbiddenError, UnauthorizedError

__all__ = ["AdminDep", "ApiKeyMiddleware", "bearer_token"]

# Model endpoints that need a key when API keys are configured; health and docs stay open.
PROTECTED_PREFIXES = ("/v1/models", "/v2/models")


def _matches(candidate: str | None, secrets: Sequence[SecretStr]) -> bool:
    if candidate is None:
        return False
    given = candidate.encode()
    # Compare against every key so the time taken does not reveal which one (or none) matched.
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(given, secret.get_secret_value().encode())
    return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _require_admin(request: Request, settings: SettingsDep) -> None:
    if settings.admin_token is None:
        raise ForbiddenError(
            "admin endpoints are disabled; set DROPSERVE_ADMIN_TOKEN to enable them"
        )
    token = bearer_token(request.headers.get("authorization"))
    if not _matches(token, [settings.admin_token]):
        raise UnauthorizedError("admin endpoints need 'Authorization: Bearer <admin token>'")


AdminDep = Annotated[None, Depends(_require_admin)]


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
        if not _matches(key, self.keys):
            response = error_body(
                "this endpoint needs an API key: send 'X-API-Key: <key>' or "
                "'Authorization: Bearer <key>'",
                401,
                **{"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
