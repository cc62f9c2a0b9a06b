"""Typed dependencies: what routes get from the app state set up in the lifespan.

They are `async def` on purpose: FastAPI runs a plain `def` dependency on a thread pool, a
thread hop per request that cost more than the whole ONNX prediction of a small model.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.dataplane import DataPlane, ModelRegistry
from service.dataplane.admin import ModelAdmin
from service.observability.metrics import Metrics
from service.peers import ProcessPeers

__all__ = [
    "DataPlaneDep",
    "MetricsDep",
    "ModelAdminDep",
    "PeersDep",
    "RegistryDep",
    "SettingsDep",
]


def _state_dataplane(request: Request) -> DataPlane:
    dataplane: DataPlane = request.app.state.dataplane
    return dataplane


async def _dataplane(request: Request) -> DataPlane:
    return _state_dataplane(request)


async def _registry(request: Request) -> ModelRegistry:
    return _state_dataplane(request).registry


async def _settings(request: Request) -> Settings:
    return _state_dataplane(request).settings


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def _peers(request: Request) -> ProcessPeers | None:
    peers: ProcessPeers | None = request.app.state.peers
    return peers


async def _model_admin(request: Request) -> ModelAdmin:
    admin: ModelAdmin = request.app.state.admin
    return admin


DataPlaneDep = Annotated[DataPlane, Depends(_dataplane)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
# This process's siblings when several share the port; None in a single server process.
PeersDep = Annotated[ProcessPeers | None, Depends(_peers)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
ModelAdminDep = Annotated[ModelAdmin, Depends(_model_admin)]
SettingsDep = Annotated[Settings, Depends(_settings)]
