"""The hot inference routes, answered without FastAPI's per-request machinery.

`POST /v1/models/{name}[/versions/{version}]/{predict,uncertainty}` with a well-formed body is
what a serving hot loop sends thousands of times a second, and FastAPI's routing, dependency
solving and request validation cost more than ONNX Runtime's prediction of a small model. This
ASGI layer answers exactly those requests: it parses the body with orjson and takes it only when
every field already has the JSON type the pydantic request model accepts without coercion; then
it calls the same data plane and response builders and serialises the same response model the
way FastAPI does, so the bytes are the same.

Everything else passes through to FastAPI untouched, its body replayed: other routes, bodies
that need coercion or are invalid (FastAPI's validation writes those errors), and anything this
layer is unsure of. Errors the data plane raises go through the one error mapping the FastAPI
handlers use. `DROPSERVE_FAST_PATH=false` turns the layer off.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import dropserve_error_response
from service.api.middleware.body_limits import replaying
from service.api.v1.responses import predict_response, uncertainty_response
from service.api.v1.schemas import PredictRequest, UncertaintyRequest
from service.dataplane import DEFAULT_INTERVAL, MAX_SEED, DataPlane
from service.errors import DropserveError

__all__ = ["InferenceFastPath"]

# Path parameters as FastAPI's `{name}` and `{version}: int` would take them: a version is
# taken only as plain digits without a leading zero (FastAPI answers the rest itself).
_ROUTE = re.compile(
    r"/v1/models/(?P<name>[^/]+)(?:/versions/(?P<version>0|[1-9][0-9]{0,17}))?"
    r"/(?P<mode>predict|uncertainty)"
)
# The fields each request schema declares: a body with any other goes to FastAPI, whose
# validation names it (the schemas forbid extra fields).
_PREDICT_FIELDS = frozenset(PredictRequest.model_fields)
_UNCERTAINTY_FIELDS = frozenset(UncertaintyRequest.model_fields)
_HEADERS = [(b"content-type", b"application/json")]

Handler = Callable[[DataPlane, str, int | None, dict[str, Any]], Awaitable[bytes]]


def _is_int(value: object) -> bool:
    return type(value) is int  # bool is a subclass of int; pydantic's int field refuses it


async def _predict(
    dataplane: DataPlane, name: str, version: int | None, body: dict[str, Any]
) -> bytes:
    response = predict_response(await dataplane.predict(name, version, body["instances"]))
    return _dump(response, exclude_none=False)


async def _uncertainty(
    dataplane: DataPlane, name: str, version: int | None, body: dict[str, Any]
) -> bytes:
    result = await dataplane.uncertainty(
        name,
        version,
        body["instances"],
        samples=body.get("samples"),
        seed=body.get("seed"),
        interval=body.get("interval", DEFAULT_INTERVAL),
        return_samples=body.get("return_samples", False),
    )
    return _dump(uncertainty_response(result), exclude_none=True)


def _dump(response: BaseModel, *, exclude_none: bool) -> bytes:
    # As FastAPI serialises a response_model: pydantic's JSON serialiser, by alias.
    return response.__pydantic_serializer__.to_json(
        response, by_alias=True, exclude_none=exclude_none
    )


def _plain_predict(body: Any) -> bool:
    return type(body) is dict and body.keys() == _PREDICT_FIELDS and type(body["instances"]) is list


def _plain_uncertainty(body: Any) -> bool:
    if type(body) is not dict or type(body.get("instances")) is not list:
        return False
    if not body.keys() <= _UNCERTAINTY_FIELDS:
        return False
    samples = body.get("samples")
    seed = body.get("seed")
    interval = body.get("interval", 0.5)
    return (
        (samples is None or (_is_int(samples) and samples >= 1))
        and (seed is None or (_is_int(seed) and 0 <= seed <= MAX_SEED))
        and type(interval) is float  # no int lies strictly between 0 and 1
        and 0.0 < interval < 1.0
        and type(body.get("return_samples", False)) is bool
    )


_MODES: dict[str, tuple[Callable[[Any], bool], Handler]] = {
    "predict": (_plain_predict, _predict),
    "uncertainty": (_plain_uncertainty, _uncertainty),
}


class InferenceFastPath:
    """Answer plain v1 inference requests directly; pass everything else to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = dataplane = None
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _ROUTE.fullmatch(scope["path"])
        if match is not None:  # no data plane without the lifespan: leave it to FastAPI
            dataplane = getattr(scope["app"].state, "dataplane", None)
        if match is None or dataplane is None:
            await self.app(scope, receive, send)
            return
        raw, disconnected = await _read_body(receive)
        if disconnected:
            return
        accepts, handler = _MODES[match["mode"]]
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if not accepts(body):
            await self.app(scope, replaying(raw, receive), send)
            return
        version = match["version"]
        try:
            content = await handler(
                dataplane, match["name"], None if version is None else int(version), body
            )
        except DropserveError as exc:
            await dropserve_error_response(exc, scope["path"])(scope, receive, send)
            return
        headers = [*_HEADERS, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False
