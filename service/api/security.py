"""Credentials: the admin bearer token and the optional API keys of the model endpoints (the
keys are checked by service.api.middleware.api_keys).

Secrets are compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr

from service.api.deps import SettingsDep
from service.errors import ForbiddenError, UnauthorizedError

__all__ = ["PROTECTED_PREFIXES", "AdminDep", "bearer_token", "matches_secret"]

# Model endpoints that need a key when API keys are configured; health and docs stay open.
PROTECTED_PREFIXES = ("/v1/models", "/v2/models")


def matches_secret(candidate: str | None, secrets: Sequence[SecretStr]) -> bool:
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
    if not matches_secret(token, [settings.admin_token]):
        raise UnauthorizedError("admin endpoints need 'Authorization: Bearer <admin token>'")


AdminDep = Annotated[None, Depends(_require_admin)]
