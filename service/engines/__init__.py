"""Inference engines behind one contract (service.engines.base): deterministic ONNX Runtime and
Monte-Carlo dropout in PyTorch, built together by `build_engines`; fake ones for tests."""

from service.engines.base import DeterministicEngine, Engine, EngineFactory, StochasticEngine
from service.engines.factory import build_engines
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
    "DeterministicEngine",
    "Engine",
    "EngineFactory",
    "MCDropoutEngine",
    "OnnxEngine",
    "RegressionSummary",
    "StochasticEngine",
    "build_engines",
    "summarise_classification",
    "summarise_regression",
]
