"""Inference engines: deterministic ONNX Runtime and Monte-Carlo dropout in PyTorch."""

from service.engines.mc_engine import MCDropoutEngine
from service.engines.onnx_engine import OnnxEngine
from service.engines.stats import (
    ClassificationSummary,
    RegressionSummary,
    summarise_classification,
    summarise_regression,
)

__all__ = [
    "ClassificationSummary",
    "MCDropoutEngine",
    "OnnxEngine",
    "RegressionSummary",
    "summarise_classification",
    "summarise_regression",
]
