"""Bodies every part of the HTTP edge shares: the one error shape, liveness and readiness."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["ErrorResponse", "HealthResponse", "ReadinessResponse"]


class ErrorResponse(BaseModel):
    """Every error: what is wrong and how to fix it."""

    error: str
    request_id: str | None = None


class HealthResponse(BaseModel):
    status: Literal["alive", "ready", "loading", "not_ready"]


class ReadinessResponse(BaseModel):
    status: Literal["ready", "loading", "not_ready", "draining"]
    models: dict[str, list[int]] = Field(description="Loaded model names and versions.")
    failed: dict[str, str] = Field(default_factory=dict, description="Bundles that were skipped.")
    processes: dict[str, str] | None = Field(
        None,
        description="With several server processes, when one is not ready: each one's status "
        "by index (`down`: not running, e.g. backing off before a restart).",
    )
