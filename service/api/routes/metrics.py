"""Prometheus scrape endpoint on the main port (unless DROPSERVE_METRICS_PORT moves it)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import MetricsDep

__all__ = ["router"]

router = APIRouter(tags=["monitoring"])


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    """Every dropserve metric in the Prometheus text format (no API key needed)."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
