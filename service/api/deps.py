"""Typed dependencies: what routes get from the app state set up in the lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.dataplane import DataPlane
from service.observability import Metrics
from service.registry import ModelRegistry

__all__ = ["DataPlaneDep", "MetricsDep", "RegistryDep", "SettingsDep"]


def _dataplane(request: Request) -> DataPlane:
    dataplane: DataPlane = request.app.state.dataplane
    return dataplane


def _registry(request: Request) -> ModelRegistry:
    return _dataplane(request).registry


def _settings(request: Request) -> Settings:
    return _dataplane(request).settings


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


DataPlaneDep = Annotated[DataPlane, Depends(_dataplane)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
SettingsDep = Annotated[Settings, Depends(_settings)]
