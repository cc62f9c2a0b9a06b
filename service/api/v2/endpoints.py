"""The Open Inference Protocol's REST routes under /v2.

Every non-200 answer is `{"error": "..."}`: 400 for a bad request (never 422, which OIP clients
do not expect), 404 for an unknown model or version, 503 while models load. The mapping is done
in `service.api.errors`, like every other error.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.api.deps import DataPlaneDep, PeersDep, RegistryDep
from service.api.fast_json import JSONRoute
from service.api.schemas import ErrorResponse
from service.api.v2.codec import HEADER_LENGTH, EncodedResponse
from service.api.v2.inference import infer
from service.api.v2.metadata import find_model, model_metadata, server_metadata
from service.api.v2.schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
    inline_schema,
)
from service.dataplane.readiness import readiness
from service.errors import NotReadyError

__all__ = ["router"]

router = APIRouter(prefix="/v2", tags=["open inference protocol"], route_class=JSONRoute)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 503, 504)
}
_INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": inline_schema(InferenceRequest)},
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "JSON header of Inference-Header-Content-Length bytes, then "
                    "binary tensor data",
                }
            },
        },
    }
}


@router.get("", response_model=ServerMetadataResponse)
@router.get("/", response_model=ServerMetadataResponse, include_in_schema=False)
async def metadata() -> ServerMetadataResponse:
    """Server name, version and protocol extensions."""
    return server_metadata()


@router.get("/health/live", response_model=ServerLiveResponse)
async def live() -> ServerLiveResponse:
    return ServerLiveResponse(live=True)


@router.get("/health/ready", response_model=ServerReadyResponse, responses=_ERRORS)
async def ready(dataplane: DataPlaneDep, peers: PeersDep) -> ServerReadyResponse:
    """200 once every bundle is loaded and warmed; 503 while loading, draining or empty."""
    state = await readiness(dataplane, peers)
    if state.status == "draining":
        raise NotReadyError("the server is shutting down; send requests to another replica")
    if state.status == "loading":
        raise NotReadyError("models are still loading; retry when /v2/health/ready answers 200")
    if not state.ready:
        raise NotReadyError("no model is loaded; the server log says which bundles failed")
    return ServerReadyResponse(ready=True)


@router.get("/models/{name}", response_model=ModelMetadataResponse, responses=_ERRORS)
async def model(name: str, registry: RegistryDep) -> ModelMetadataResponse:
    """Tensor metadata of the newest version: the feature input and the outputs of both modes."""
    return model_metadata(find_model(registry, name, None), list(registry.models()[name]))


@router.get(
    "/models/{name}/versions/{version}", response_model=ModelMetadataResponse, responses=_ERRORS
)
async def model_version(name: str, version: str, registry: RegistryDep) -> ModelMetadataResponse:
    """Tensor metadata of one version."""
    return model_metadata(find_model(registry, name, version), list(registry.models()[name]))


@router.get("/models/{name}/ready", response_model=ModelReadyResponse, responses=_ERRORS)
async def model_ready(name: str, registry: RegistryDep) -> ModelReadyResponse:
    """200 when the model is loaded; a loaded model is always warmed and ready."""
    find_model(registry, name, None)
    return ModelReadyResponse(name=name, ready=True)


@router.get(
    "/models/{name}/versions/{version}/ready", response_model=ModelReadyResponse, responses=_ERRORS
)
async def model_version_ready(name: str, version: str, registry: RegistryDep) -> ModelReadyResponse:
    find_model(registry, name, version)
    return ModelReadyResponse(name=name, ready=True)


def _encoded(encoded: EncodedResponse) -> Response:
    if encoded.header_length is None:
        return Response(encoded.body, media_type="application/json")
    return Response(
        encoded.body,
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(encoded.header_length)},
    )


@router.post(
    "/models/{name}/infer",
    response_model=InferenceResponse,
    responses=_ERRORS,
    openapi_extra=_INFER_BODY,
)
async def model_infer(
    name: str, request: Request, dataplane: DataPlaneDep, registry: RegistryDep
) -> Response:
    """Deterministic prediction by default; `"parameters": {"mode": "uncertainty"}` for MC
    dropout. Inputs and outputs may travel as binary tensor data (Triton's extension)."""
    body = await request.body()
    return _encoded(await infer(dataplane, registry, name, None, body, request.headers))


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferenceResponse,
    responses=_ERRORS,
    openapi_extra=_INFER_BODY,
)
async def model_version_infer(
    name: str, version: str, request: Request, dataplane: DataPlaneDep, registry: RegistryDep
) -> Response:
    """Inference with a pinned model version."""
    body = await request.body()
    return _encoded(await infer(dataplane, registry, name, version, body, request.headers))
