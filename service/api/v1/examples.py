"""Fixed OpenAPI examples: rows for the request schemas, the real answers of the shipped models,
and the error shape of each status.

The per-model request examples are generated from the loaded models' manifests
(service.api.v1.model_examples); the answers below replace the generated, illustrative ones for
the shipped models, so /docs shows what they really answer. A test compares every response
example's shape with the real answer, so they cannot drift from the API.
"""

from __future__ import annotations

from typing import Any

from fastapi.openapi.models import Example
from pydantic import JsonValue

__all__ = [
    "CONCRETE_OBJECT",
    "CONCRETE_ROW",
    "SHIPPED_DIGESTS",
    "SHIPPED_PREDICT_ANSWERS",
    "SHIPPED_UNCERTAINTY_ANSWERS",
    "VERSIONS",
    "error_responses",
]

# One concrete row, in feature order and keyed by name; the request schemas show them too.
CONCRETE_ROW: list[JsonValue] = [540.0, 0.0, 0.0, 162.0, 2.5, 1040.0, 676.0, 28.0]
CONCRETE_OBJECT: dict[str, JsonValue] = {
    "cement": 332.5,
    "slag": 142.5,
    "fly_ash": 0.0,
    "water": 228.0,
    "superplasticizer": 0.0,
    "coarse_aggregate": 932.0,
    "fine_aggregate": 594.0,
    "age": 270.0,
}
DIGIT_LABELS = [str(digit) for digit in range(10)]

VERSIONS: dict[str, Example] = {"1": Example(summary="version 1", value=1)}

# The shipped bundles the answers below were recorded from, by their manifest digests: a model
# of the same name trained anew gets generated examples, not these answers.
SHIPPED_DIGESTS = {
    "concrete": "sha256:02e0e2a2f9b028addb8ef4fa2671c451d356f3a62621d611011d058b82521fba",
    "digits": "sha256:98b3a882d43a4520fba5771814c35a1841161ee7d660dc8697948d7147a99ecb",
}

# Answers of the shipped models, rounded: the numbers show the shape, not the last digits.
SHIPPED_PREDICT_ANSWERS: dict[str, Example] = {
    "concrete": Example(
        summary="concrete",
        value={
            "model": "concrete",
            "version": 1,
            "task": "regression",
            "outputs": ["strength"],
            "predictions": [[64.68]],
        },
    ),
    "digits": Example(
        summary="digits",
        value={
            "model": "digits",
            "version": 1,
            "task": "classification",
            "outputs": DIGIT_LABELS,
            "predictions": [
                {"label": "1", "probabilities": [0.0, 1.0, *[0.0] * 8]},
            ],
        },
    ),
}

SHIPPED_UNCERTAINTY_ANSWERS: dict[str, Example] = {
    "concrete": Example(
        summary="concrete",
        value={
            "model": "concrete",
            "version": 1,
            "task": "regression",
            "outputs": ["strength"],
            "samples": 1000,
            "seed": 7,
            "interval": 0.95,
            "device": "cpu",
            "precision": "fp32",
            "predictions": [
                {
                    "mean": [64.53],
                    "variance": [47.28],
                    "std": [6.88],
                    "epistemic_variance": [29.91],
                    "aleatoric_variance": [17.37],
                    "lower": [46.61],
                    "upper": [75.92],
                }
            ],
        },
    ),
    "digits": Example(
        summary="digits",
        value={
            "model": "digits",
            "version": 1,
            "task": "classification",
            "outputs": DIGIT_LABELS,
            "samples": 100,
            "seed": 7,
            "device": "cpu",
            "precision": "fp32",
            "predictions": [
                {
                    "label": "1",
                    "probabilities": [0.0, 1.0, *[0.0] * 8],
                    "variance": [0.0] * 10,
                    "std": [0.0] * 10,
                    "predictive_entropy": 0.0000183,
                    "expected_entropy": 0.0000149,
                    "mutual_information": 0.0000034,
                }
            ],
        },
    ),
}

_ERROR_EXAMPLES = {
    400: "request body is not valid JSON (Expecting value); send a JSON object",
    401: "this endpoint needs an API key: send 'X-API-Key: <key>' or 'Authorization: Bearer <key>'",
    404: "model 'houses' is not loaded; loaded models: concrete, digits",
    413: "request body exceeds the limit of 1048576 bytes",
    415: "Content-Type must be application/json, got text/plain",
    422: "instances[0] has 4 values but the model expects 8 features in this order: cement, "
    "slag, fly_ash, water, superplasticizer, coarse_aggregate, fine_aggregate, age",
    503: "models are still loading; retry when /health/ready answers 200",
    504: "Monte-Carlo dropout stopped after 4096 of 10000 passes: the request timeout passed; "
    "ask for fewer samples or rows",
}


def error_responses(model: type, codes: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    """The error shape for each status, with an example message (the id is the request's)."""
    return {
        code: {
            "model": model,
            "content": {
                "application/json": {
                    "example": {"error": _ERROR_EXAMPLES[code], "request_id": "3f2a9c1e7b4d"}
                }
            },
        }
        for code in codes
    }
