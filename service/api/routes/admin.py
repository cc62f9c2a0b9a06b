"""Admin endpoints (bearer token): rescan the models folder, load or unload one model.

Each action is taken by every server process before it is answered. The answer is 200 when
every process acted; 207 when a sibling process did not (it names which, and why); 422 when a
bundle failed to load (every version that was serving keeps serving).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from service.api.deps import ModelAdminDep
from service.api.schemas import ErrorResponse
from service.api.security import AdminDep
from service.dataplane.admin import AdminResult

router = APIRouter(prefix="/admin", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404)
}


class ProcessStatus(BaseModel):
    """What one server process did; `error` says why it did nothing."""

    process: int
    status: str = Field(description="ok, failed (a bundle failed to load), or error")
    loaded: list[str] = []
    unloaded: list[str] = []
    kept: list[str] = []
    failed: dict[str, str] = {}
    error: str | None = None


class ReloadResponse(BaseModel):
    """What changed in the process that took the request; `failed` maps bundle folders to why
    they were skipped. With several server processes, `processes` lists each one's outcome."""

    status: str
    loaded: list[str]
    unloaded: list[str]
    kept: list[str]
    failed: dict[str, str]
    processes: list[ProcessStatus] | None = None


class UnloadResponse(BaseModel):
    status: str
    model: str
    versions: list[int]
    processes: list[ProcessStatus] | None = None


def _processes(result: AdminResult) -> list[ProcessStatus] | None:
    if not result.siblings:
        return None
    reports = [
        (result.index, result.report, None),
        *((outcome.index, outcome.report, outcome.error) for outcome in result.siblings),
    ]
    statuses = []
    for index, report, error in sorted(reports, key=lambda row: row[0]):
        if report is None:
            statuses.append(ProcessStatus(process=index, status="error", error=error))
            continue
        statuses.append(
            ProcessStatus(
                process=index,
                status="failed" if report.failed else "ok",
                loaded=report.loaded,
                unloaded=report.unloaded,
                kept=report.kept,
                failed=report.failed,
            )
        )
    return statuses


def _status_code(result: AdminResult) -> int:
    # A bundle that failed is the operator's to fix: 422 with the details. A process that did
    # not act is reported apart: 207, so that a client cannot take it for a full success.
    if result.failed:
        return 422
    return 200 if result.complete else 207


def _answer(result: AdminResult) -> JSONResponse:
    report = result.report
    body = ReloadResponse(
        status="failed" if result.failed else "ok" if result.complete else "partial",
        loaded=report.loaded,
        unloaded=report.unloaded,
        kept=report.kept,
        failed=report.failed,
        processes=_processes(result),
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=_status_code(result))


_RELOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    207: {"model": ReloadResponse},
    422: {"model": ReloadResponse},
}


@router.post("/reload", response_model=ReloadResponse, responses=_RELOAD_RESPONSES)
async def reload(_: AdminDep, admin: ModelAdminDep) -> JSONResponse:
    """Rescan the models folder in every server process: load new versions beside the old,
    then swap atomically."""
    return _answer(await admin.reload())


@router.post("/models/{name}/load", response_model=ReloadResponse, responses=_RELOAD_RESPONSES)
async def load_model(name: str, _: AdminDep, admin: ModelAdminDep) -> JSONResponse:
    """Load (or reload) every version of one model from the models folder, in every process."""
    return _answer(await admin.load(name))


@router.post(
    "/models/{name}/unload",
    response_model=UnloadResponse,
    responses={**_ERRORS, 207: {"model": UnloadResponse}},
)
async def unload_model(name: str, _: AdminDep, admin: ModelAdminDep) -> JSONResponse:
    """Stop serving a model in every process until it is loaded again (a full reload skips
    it)."""
    result = await admin.unload(name)
    versions = [int(key.rpartition("/")[2]) for key in result.report.unloaded]
    body = UnloadResponse(
        status="unloaded" if result.complete else "partial",
        model=name,
        versions=versions,
        processes=_processes(result),
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=_status_code(result))
