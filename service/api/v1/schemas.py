"""The JSON API's contract: request and response bodies, with examples that work in /docs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from service.api.v1.examples import CONCRETE_OBJECT, CONCRETE_ROW
from service.dataplane.rules import DEFAULT_INTERVAL, MAX_SEED

__all__ = [
    "ClassPrediction",
    "ClassUncertainty",
    "ModelDetail",
    "ModelList",
    "ModelSummary",
    "PredictRequest",
    "PredictResponse",
    "RegressionUncertainty",
    "UncertaintyRequest",
    "UncertaintyResponse",
]

# Rows are validated against the model's own feature list in service.dataplane.inputs, which
# names the row and feature at fault; the schema only documents the two accepted shapes.
Instances = Annotated[
    list[Any],
    WithJsonSchema(
        {
            "type": "array",
            "minItems": 1,
            "description": "Rows as arrays in feature order, or objects keyed by feature name.",
            "items": {
                "anyOf": [
                    {"type": "array", "items": {"type": "number"}},
                    {"type": "object", "additionalProperties": {"type": "number"}},
                ]
            },
        }
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictRequest(_Body):
    """Rows to predict deterministically."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"instances": [CONCRETE_ROW]}, {"instances": [CONCRETE_OBJECT]}]
        },
    )

    instances: Instances


class UncertaintyRequest(_Body):
    """Rows to run through Monte-Carlo dropout, and how."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"instances": [CONCRETE_ROW], "samples": 200, "seed": 7},
                {"instances": [CONCRETE_OBJECT], "samples": 1000, "interval": 0.9},
            ]
        },
    )

    # Strict types, as in /v2: `"samples": "100"`, `true` or `100.0`, `"interval": "0.9"` and
    # `"return_samples": "yes"` are refused (422) rather than guessed at, so a client's bug shows
    # at once instead of as a request that silently means something else.
    instances: Instances
    samples: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="Stochastic passes T (default and maximum from the settings).",
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        strict=True,
        description="Same seed, device and settings, same answer; omitted, a random seed is "
        "used and echoed.",
    )
    interval: float = Field(
        DEFAULT_INTERVAL,
        gt=0.0,
        lt=1.0,
        strict=True,
        description="Central interval mass (regression).",
    )
    return_samples: bool = Field(
        False, strict=True, description="Include the T pass outputs for each row."
    )


class ModelSummary(BaseModel):
    name: str
    versions: list[int]
    latest: int
    task: Literal["regression", "classification"]
    description: str = ""


class ModelList(BaseModel):
    models: list[ModelSummary]


class Limits(BaseModel):
    default_samples: int
    max_samples: int
    max_rows: int
    max_work: int = Field(description="Most rows x samples in one uncertainty request.")
    max_return_samples: int


class ModelDetail(BaseModel):
    """The public part of a bundle manifest, plus the server's limits for this model."""

    name: str
    version: int
    versions: list[int]
    task: Literal["regression", "classification"]
    description: str
    features: list[str]
    outputs: list[str] = Field(description="Regression target names, or class labels.")
    classes: list[str] | None
    architecture: dict[str, Any]
    tau: list[float] | None
    metrics: dict[str, float]
    examples: list[list[float]] = Field(
        description="Rows to try the model with, raw units in feature order: held-out "
        "validation rows recorded at training time or, for a bundle trained before they were "
        "recorded, one row of the training means of the features."
    )
    created_at: str
    onnx: dict[str, Any]
    limits: Limits
    device: str


class ClassPrediction(BaseModel):
    label: str
    probabilities: list[float] = Field(description="One per class, in the order of `classes`.")


class PredictResponse(BaseModel):
    model: str
    version: int
    task: Literal["regression", "classification"]
    outputs: list[str] = Field(description="Regression target names, or class labels.")
    predictions: list[list[float]] | list[ClassPrediction] = Field(
        description="Regression: one list of output values per row. Classification: label and "
        "probabilities per row."
    )


class RegressionUncertainty(BaseModel):
    """One row; each list has one entry per output."""

    mean: list[float]
    variance: list[float] = Field(description="Total predictive variance: epistemic + aleatoric.")
    std: list[float]
    epistemic_variance: list[float] = Field(description="Variance of the T pass outputs.")
    aleatoric_variance: list[float] = Field(description="Observation noise 1/tau.")
    lower: list[float]
    upper: list[float]
    samples: list[list[float]] | None = Field(None, description="T x outputs, when requested.")


class ClassUncertainty(BaseModel):
    """One row; the class lists follow `classes`."""

    label: str
    probabilities: list[float] = Field(description="Mean softmax probability over the T passes.")
    variance: list[float]
    std: list[float]
    predictive_entropy: float = Field(description="H[mean p], nats.")
    expected_entropy: float = Field(description="Mean over passes of H[p_t], nats (aleatoric).")
    mutual_information: float = Field(description="BALD: predictive - expected entropy, nats.")
    samples: list[list[float]] | None = Field(None, description="T x classes, when requested.")


class UncertaintyResponse(BaseModel):
    model: str
    version: int
    task: Literal["regression", "classification"]
    outputs: list[str]
    samples: int
    seed: int
    interval: float | None = Field(None, description="Central interval mass (regression only).")
    device: str
    precision: Literal["fp32", "tf32", "bf16"] = Field(
        description="Arithmetic of the passes (DROPSERVE_PRECISION, resolved for this T)."
    )
    predictions: list[RegressionUncertainty] | list[ClassUncertainty]
