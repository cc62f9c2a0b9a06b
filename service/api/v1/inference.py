"""Inference routes: deterministic prediction (ONNX) and MC-dropout uncertainty (PyTorch).

They answer what the fast path (service.api.v1.fast_path) passes on: bodies that need coercion
or fail validation, and every request when DROPSERVE_FAST_PATH is off."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service.api.deps import DataPlaneDep
from service.api.fast_json import JSONRoute
from service.api.schemas import ErrorResponse
from service.api.v1.examples import VERSIONS, error_responses
from service.api.v1.responses import predict_response, uncertainty_response
from service.api.v1.schemas import (
    PredictRequest,
    PredictResponse,
    UncertaintyRequest,
    UncertaintyResponse,
)

router = APIRouter(prefix="/v1/models", tags=["inference"], route_class=JSONRoute)
_ERRORS = error_responses(ErrorResponse, (400, 401, 404, 413, 415, 422, 503, 504))
# The examples of each loaded model's name, requests and answers are added to the document
# when it is served (service.api.openapi): the models are not known when these routes are made.
Version = Annotated[int, Path(openapi_examples=VERSIONS)]


@router.post("/{name}/predict", response_model=PredictResponse, responses=_ERRORS)
async def predict(name: str, body: PredictRequest, dataplane: DataPlaneDep) -> PredictResponse:
    """Deterministic prediction: every unit kept, test-time scaling folded into the ONNX graph."""
    return predict_response(await dataplane.predict(name, None, body.instances))


@router.post(
    "/{name}/versions/{version}/predict",
    response_model=PredictResponse,
    responses=_ERRORS,
)
async def predict_version(
    name: str, version: Version, body: PredictRequest, dataplane: DataPlaneDep
) -> PredictResponse:
    """Deterministic prediction with a pinned model version."""
    return predict_response(await dataplane.predict(name, version, body.instances))


@router.post(
    "/{name}/uncertainty",
    response_model=UncertaintyResponse,
    response_model_exclude_none=True,
    responses=_ERRORS,
)
async def uncertainty(
    name: str, body: UncertaintyRequest, dataplane: DataPlaneDep
) -> UncertaintyResponse:
    """Monte-Carlo dropout: T stochastic passes, summarised per row and output."""
    return await _uncertainty(name, None, body, dataplane)


@router.post(
    "/{name}/versions/{version}/uncertainty",
    response_model=UncertaintyResponse,
    response_model_exclude_none=True,
    responses=_ERRORS,
)
async def uncertainty_version(
    name: str, version: Version, body: UncertaintyRequest, dataplane: DataPlaneDep
) -> UncertaintyResponse:
    """Monte-Carlo dropout with a pinned model version."""
    return await _uncertainty(name, version, body, dataplane)


async def _uncertainty(
    name: str, version: int | None, body: UncertaintyRequest, dataplane: DataPlaneDep
) -> UncertaintyResponse:
    result = await dataplane.uncertainty(
        name,
        version,
        body.instances,
        samples=body.samples,
        seed=body.seed,
        interval=body.interval,
        return_samples=body.return_samples,
    )
    return uncertainty_response(result)
