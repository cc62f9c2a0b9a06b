"""OpenAPI examples for the inference routes: a request for each default model, so that "Try it
out" in /docs answers 200 whichever is chosen, and the answers those requests get.

Each example's key starts with the model it is for; choose the same model as `name`. A test
posts every request example to the default models and compares every response example's shape
with the real answer, so they cannot drift from the API.
"""

from __future__ import annotations

from typing import Any

from fastapi.openapi.models import Example
from pydantic import JsonValue

__all__ = [
    "MODEL_NAMES",
    "PREDICT_EXAMPLES",
    "PREDICT_RESPONSES",
    "UNCERTAINTY_EXAMPLES",
    "UNCERTAINTY_RESPONSES",
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
# An 8x8 image of a "1", row by row, counts 0-16.
DIGITS_ROW = [0, 0, 0, 12, 13, 5, 0, 0, 0, 0, 0, 11, 16, 9, 0, 0, 0, 0, 3, 15, 16, 6, 0, 0]
DIGITS_ROW += [0, 7, 15, 16, 16, 2, 0, 0, 0, 0, 1, 16, 16, 3, 0, 0, 0, 0, 1, 16, 16, 6, 0, 0]
DIGITS_ROW += [0, 0, 1, 16, 16, 6, 0, 0, 0, 0, 0, 11, 16, 10, 0, 0]
DIGIT_LABELS = [str(digit) for digit in range(10)]

MODEL_NAMES: dict[str, Example] = {
    "concrete": Example(summary="concrete (regression)", value="concrete"),
    "digits": Example(summary="digits (classification)", value="digits"),
}

VERSIONS: dict[str, Example] = {"1": Example(summary="version 1", value=1)}

PREDICT_EXAMPLES: dict[str, Example] = {
    "concrete": Example(
        summary="concrete: a row in feature order", value={"instances": [CONCRETE_ROW]}
    ),
    "concrete-by-name": Example(
        summary="concrete: a row keyed by feature name", value={"instances": [CONCRETE_OBJECT]}
    ),
    "digits": Example(
        summary="digits: the 64 pixels of an 8x8 image, row by row",
        value={"instances": [DIGITS_ROW]},
    ),
}

UNCERTAINTY_EXAMPLES: dict[str, Example] = {
    "concrete": Example(
        summary="concrete: 1000 passes, seeded",
        value={"instances": [CONCRETE_ROW], "samples": 1000, "seed": 7},
    ),
    "concrete-interval": Example(
        summary="concrete: a 90 % interval and the passes themselves",
        value={
            "instances": [CONCRETE_OBJECT],
            "samples": 3,
            "seed": 7,
            "interval": 0.9,
            "return_samples": True,
        },
    ),
    "digits": Example(
        summary="digits: 100 passes, seeded",
        value={"instances": [DIGITS_ROW], "samples": 100, "seed": 7},
    ),
}


def _answers(examples: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"examples": examples}}}}


# Answers of the shipped models, rounded: the numbers show the shape, not the last digits.
PREDICT_RESPONSES = _answers(
    {
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
)

UNCERTAINTY_RESPONSES = _answers(
    {
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
)

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
