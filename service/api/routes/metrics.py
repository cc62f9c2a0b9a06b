"""Prometheus scrape endpoint on the main port (unless DROPSERVE_METRICS_PORT moves it)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import MetricsDep, PeersDep
from service.observability.process_metrics import collect_processes

__all__ = ["router"]

router = APIRouter(tags=["monitoring"])


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep, peers: PeersDep) -> Response:
    """Every dropserve metric in the Prometheus text format (no API key needed); with several
    server processes, every process's, each series labelled `process`."""
    if peers is None:
        body = generate_latest(metrics.registry)
    else:
        body = await collect_processes(peers, metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
