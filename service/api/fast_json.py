"""Request bodies parsed by orjson: several times faster than the standard library on the
number-heavy bodies inference requests are (85 KB for 64 rows x 64 features).

orjson refuses what strict JSON refuses, NaN and Infinity among them; such bodies are parsed
again by the standard library, so that the row validation can still name the offending value
("instances[0], feature 'slag': value must be a finite number, got nan") and genuinely broken
JSON still gets the standard library's error position.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

__all__ = ["JSONRoute"]


class _JSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError:
                self._json = json.loads(body)
        return self._json


class JSONRoute(APIRoute):
    """An APIRoute whose request body is decoded by orjson."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_JSONRequest(request.scope, request.receive))

        return route
