"""ASGI layers in front of the routes: body limits and API keys (the v1 fast path and the access
log are middleware too, but live with the API and the observability they serve)."""

from service.api.middleware.api_keys import ApiKeyMiddleware
from service.api.middleware.body_limits import BodyLimitMiddleware

__all__ = ["ApiKeyMiddleware", "BodyLimitMiddleware"]
