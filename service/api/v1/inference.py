"""Inference routes: deterministic prediction (ONNX) and MC-dropout uncertainty (PyTorch).

They answer what the fast path (service.api.v1.fast_path) passes on: bodies that need coercion
or fail validation, and every request when DROPSERVE_FAST_PATH is off."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

from service.api.deps import DataPlaneDep
from service.api.fast_json import JSONRoute
from service.api.schemas import ErrorResponse
from service.api.v1.examples import (
    MODEL_NAMES,
    PREDICT_EXAMPLES,
    PREDICT_RESPONSES,
    UNCERTAINTY_EXAMPLES,
    UNCERTAINTY_RESPONSES,
    VERSIONS,
    error_responses,
)
from service.api.v1.responses import predict_response, uncertainty_response
from service.api.v1.schemas import (
    PredictRequest,
    PredictResponse,
    UncertaintyRequest,
    UncertaintyResponse,
)

router = APIRouter(prefix="/v1/models", tags=["inference"], route_class=JSONRoute)
_ERRORS = error_responses(ErrorResponse, (400, 401, 404, 413, 415, 422, 503, 504))
# Examples in /docs: a request for each default model, and the answers it gets.
Name = Annotated[str, Path(openapi_examples=MODEL_NAMES)]
Version = Annotated[int, Path(openapi_examples=VERSIONS)]
Predict = Annotated[PredictRequest, Body(openapi_examples=PREDICT_EXAMPLES)]
Uncertain = Annotated[UncertaintyRequest, Body(openapi_examples=UNCERTAINTY_EXAMPLES)]
_PREDICT_RESPONSES = {**PREDICT_RESPONSES, **_ERRORS}
_UNCERTAINTY_RESPONSES = {**UNCERTAINTY_RESPONSES, **_ERRORS}


@router.post("/{name}/predict", response_model=PredictResponse, responses=_PREDICT_RESPONSES)
async def predict(name: Name, body: Predict, dataplane: DataPlaneDep) -> PredictResponse:
    """Deterministic prediction: every unit kept, test-time scaling folded into the ONNX graph."""
    return predict_response(await dataplane.predict(name, None, body.instances))


@router.post(
    "/{name}/versions/{version}/predict",
    response_model=PredictResponse,
    responses=_PREDICT_RESPONSES,
)
async def predict_version(
    name: Name, version: Version, body: Predict, dataplane: DataPlaneDep
) -> PredictResponse:
    """Deterministic prediction with a pinned model version."""
    return predict_response(await dataplane.predict(name, version, body.instances))


@router.post(
    "/{name}/uncertainty",
    response_model=UncertaintyResponse,
    response_model_exclude_none=True,
    responses=_UNCERTAINTY_RESPONSES,
)
async def uncertainty(name: Name, body: Uncertain, dataplane: DataPlaneDep) -> UncertaintyResponse:
    """Monte-Carlo dropout: T stochastic passes, summarised per row and output."""
    return await _uncertainty(name, None, body, dataplane)


@router.post(
    "/{name}/versions/{version}/uncertainty",
    response_model=UncertaintyResponse,
    response_model_exclude_none=True,
    responses=_UNCERTAINTY_RESPONSES,
)
async def uncertainty_version(
    name: Name, version: Version, body: Uncertain, dataplane: DataPlaneDep
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
