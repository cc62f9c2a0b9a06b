"""Liveness and readiness: live while the process runs, ready once every model is loaded (in
every server process that answers: service.dataplane.readiness)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import DataPlaneDep, PeersDep
from service.api.schemas import HealthResponse, ReadinessResponse
from service.dataplane.readiness import readiness

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
async def ready(dataplane: DataPlaneDep, peers: PeersDep) -> JSONResponse:
    registry = dataplane.registry
    models = {name: list(versions) for name, versions in registry.models().items()}
    state = await readiness(dataplane, peers)
    body = ReadinessResponse(
        status=state.status,
        models=models,
        failed=registry.failures,
        processes={str(index): status for index, status in state.processes.items()} or None,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if state.ready else 503)


__all__ = ["router"]
