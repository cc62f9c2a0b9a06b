"""Liveness and readiness: live while the process runs, ready once every model is loaded."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import DataPlaneDep
from service.api.schemas import HealthResponse, ReadinessResponse

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=HealthResponse)
async def live() -> HealthResponse:
    return HealthResponse(status="alive")


@router.get(
    "/ready",
    response_model=ReadinessResponse,
    responses={
        503: {"model": ReadinessResponse, "description": "Still loading or nothing loaded."}
    },
)
async def ready(dataplane: DataPlaneDep) -> JSONResponse:
    registry = dataplane.registry
    models = {name: list(versions) for name, versions in registry.models().items()}
    if dataplane.draining:
        status, code = "draining", 503
    elif not registry.ready:
        status, code = "loading", 503
    elif not models:
        status, code = "not_ready", 503
    else:
        status, code = "ready", 200
    body = ReadinessResponse(status=status, models=models, failed=registry.failures)
    return JSONResponse(body.model_dump(), status_code=code)


__all__ = ["router"]
