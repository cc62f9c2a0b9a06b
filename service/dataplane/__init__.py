"""The protocol-neutral data plane: models by name and version, request rules, inference and
its results. Protocol adapters (service.api.v1, service.api.v2) call it and see only what it
exports: NumPy arrays and plain dataclasses, never an engine or a tensor."""

from service.dataplane.inputs import Rows
from service.dataplane.plane import DataPlane
from service.dataplane.registry import EngineFactory, LoadedModel, ModelRegistry, ReloadReport
from service.dataplane.results import (
    ClassificationStats,
    Prediction,
    RegressionStats,
    Uncertainty,
)
from service.dataplane.rules import DEFAULT_INTERVAL, MAX_SEED

__all__ = [
    "DEFAULT_INTERVAL",
    "MAX_SEED",
    "ClassificationStats",
    "DataPlane",
    "EngineFactory",
    "LoadedModel",
    "ModelRegistry",
    "Prediction",
    "RegressionStats",
    "ReloadReport",
    "Rows",
    "Uncertainty",
]
