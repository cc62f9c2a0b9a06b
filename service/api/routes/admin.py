"""Admin endpoints (bearer token): rescan the models folder, load or unload one model."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service.api.deps import PeersDep, RegistryDep, ReloadRelayDep
from service.api.schemas import ErrorResponse
from service.api.security import AdminDep
from service.dataplane import ReloadReport
from service.errors import ConflictError, ModelNotFoundError

router = APIRouter(prefix="/admin", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409)
}


def _single_process_only(action: str, peers: PeersDep) -> None:
    if peers is not None:
        raise ConflictError(
            f"{action} one model is not available with several server processes "
            "(DROPSERVE_PROCESSES > 1): only the process that took this request would change; "
            "change the models folder and POST /admin/reload, which every process follows"
        )


class ReloadResponse(BaseModel):
    """What changed; `failed` maps bundle folders to why they were skipped."""

    status: str
    loaded: list[str]
    unloaded: list[str]
    kept: list[str]
    failed: dict[str, str]


class UnloadResponse(BaseModel):
    status: str
    model: str
    versions: list[int]


def _answer(report: ReloadReport) -> JSONResponse:
    # A bundle that failed is the operator's to fix: answer 422 with the details, while every
    # version that was serving keeps serving.
    body = ReloadResponse(
        status="failed" if report.failed else "ok",
        loaded=report.loaded,
        unloaded=report.unloaded,
        kept=report.kept,
        failed=report.failed,
    )
    return JSONResponse(body.model_dump(), status_code=422 if report.failed else 200)


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses={**_ERRORS, 422: {"model": ReloadResponse}},
)
async def reload(_: AdminDep, registry: RegistryDep, relay: ReloadRelayDep) -> JSONResponse:
    """Rescan the models folder: load new versions beside the old, then swap atomically.

    With several server processes this answers for the one that took the request; the others
    rescan too, right after (the supervisor relays the reload to all of them)."""
    answer = _answer(await anyio.to_thread.run_sync(registry.reload))
    if relay is not None:
        relay()
    return answer


@router.post(
    "/models/{name}/load",
    response_model=ReloadResponse,
    responses={**_ERRORS, 422: {"model": ReloadResponse}},
)
async def load_model(
    name: str, _: AdminDep, registry: RegistryDep, peers: PeersDep
) -> JSONResponse:
    """Load (or reload) every version of one model from the models folder."""
    _single_process_only("loading", peers)
    report = await anyio.to_thread.run_sync(lambda: registry.reload(only=name))
    if not (report.loaded or report.kept or report.failed):
        raise ModelNotFoundError(f"no bundle named '{name}' under the models folder")
    return _answer(report)


@router.post("/models/{name}/unload", response_model=UnloadResponse, responses=_ERRORS)
async def unload_model(
    name: str, _: AdminDep, registry: RegistryDep, peers: PeersDep
) -> UnloadResponse:
    """Stop serving a model until it is loaded again (a full reload skips it)."""
    _single_process_only("unloading", peers)
    versions = registry.unload(name)
    return UnloadResponse(status="unloaded", model=name, versions=versions)
