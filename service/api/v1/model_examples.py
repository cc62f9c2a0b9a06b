"""OpenAPI examples made from a model's manifest, so that "Try it out" in /docs works for every
loaded model, not only the shipped ones.

Requests use the manifest's example rows (held-out rows in raw units), or the feature means for
bundles written before rows were recorded. Answers are not computed here: running the model
each time the document is built would cost more than the document is worth, so a generated
answer shows the shape of the real one with illustrative numbers (the target means and stds,
uniform probabilities), and the shipped models' real answers replace them
(service.api.v1.examples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fastapi.openapi.models import Example
from pydantic import JsonValue

from service.bundle.manifest import Manifest

__all__ = ["ModelExamples", "model_examples"]

# The seed every example uses, so that trying one twice gives the same answer.
SEED = 7
# Passes asked for by the uncertainty examples: enough for stable numbers, quick on any model.
SAMPLES = 100
# The interval example returns its passes too; a few keep the answer readable.
FEW_SAMPLES = 3


@dataclass(frozen=True)
class ModelExamples:
    """The /docs examples of one model, keyed by strings that start with its name."""

    predict: dict[str, Example]
    uncertainty: dict[str, Example]
    predict_answer: Example
    uncertainty_answer: Example


def model_examples(manifest: Manifest, max_samples: int) -> ModelExamples:
    """The request examples of a model, and illustrative answers of the right shape.

    Args:
        manifest: the model version the examples are for.
        max_samples: the server's largest T; the examples never ask for more.
    """
    name = manifest.name
    rows = manifest.examples or [list(manifest.normalization.feature_mean)]
    row: list[JsonValue] = list(rows[0])
    samples = min(SAMPLES, max_samples)
    predict = {name: Example(summary=f"{name}: a row in feature order", value={"instances": [row]})}
    uncertainty = {
        name: Example(
            summary=f"{name}: {samples} passes, seeded",
            value={"instances": [row], "samples": samples, "seed": SEED},
        )
    }
    if manifest.task == "regression":
        # A second row when there is one, so that the two examples answer differently.
        named: dict[str, JsonValue] = dict(zip(manifest.features, rows[-1], strict=True))
        predict[f"{name}-by-name"] = Example(
            summary=f"{name}: a row keyed by feature name", value={"instances": [named]}
        )
        uncertainty[f"{name}-interval"] = Example(
            summary=f"{name}: a 90 % interval and the passes themselves",
            value={
                "instances": [named],
                "samples": min(FEW_SAMPLES, max_samples),
                "seed": SEED,
                "interval": 0.9,
                "return_samples": True,
            },
        )
    return ModelExamples(
        predict, uncertainty, _predict_answer(manifest), _uncertainty_answer(manifest, samples)
    )


def _head(manifest: Manifest) -> dict[str, JsonValue]:
    outputs: list[JsonValue] = list(manifest.output_names)
    return {
        "model": manifest.name,
        "version": manifest.version,
        "task": manifest.task,
        "outputs": outputs,
    }


def _summary(manifest: Manifest) -> str:
    return f"{manifest.name}: the shape of the answer (illustrative numbers)"


def _predict_answer(manifest: Manifest) -> Example:
    if manifest.task == "regression":
        mean: list[JsonValue] = list(_target_mean(manifest))
        prediction: JsonValue = mean
    else:
        prediction = _class_prediction(manifest)
    return Example(
        summary=_summary(manifest), value={**_head(manifest), "predictions": [prediction]}
    )


def _uncertainty_answer(manifest: Manifest, samples: int) -> Example:
    run: dict[str, JsonValue] = {"samples": samples, "seed": SEED}
    if manifest.task == "regression":
        mean = _target_mean(manifest)
        std = list(manifest.normalization.target_std or [1.0] * len(mean))
        aleatoric = [1 / tau for tau in manifest.tau or [1.0] * len(mean)]
        variance = [s * s for s in std]
        prediction: dict[str, JsonValue] = {
            "mean": list(mean),
            "variance": list(variance),
            "std": list(std),
            "epistemic_variance": [
                max(v - a, 0.0) for v, a in zip(variance, aleatoric, strict=True)
            ],
            "aleatoric_variance": list(aleatoric),
            "lower": [m - 1.96 * s for m, s in zip(mean, std, strict=True)],
            "upper": [m + 1.96 * s for m, s in zip(mean, std, strict=True)],
        }
        run["interval"] = 0.95
    else:
        n_classes = manifest.n_outputs
        entropy = math.log(n_classes)  # uniform probabilities: passes that agree on nothing
        prediction = {
            **_class_prediction(manifest),
            "variance": [0.0] * n_classes,
            "std": [0.0] * n_classes,
            "predictive_entropy": entropy,
            "expected_entropy": entropy,
            "mutual_information": 0.0,
        }
    value = {**_head(manifest), **run, "device": "cpu", "precision": "fp32"}
    return Example(summary=_summary(manifest), value={**value, "predictions": [prediction]})


def _target_mean(manifest: Manifest) -> list[float]:
    return list(manifest.normalization.target_mean or [0.0] * manifest.n_outputs)


def _class_prediction(manifest: Manifest) -> dict[str, JsonValue]:
    labels = manifest.output_names
    probabilities: list[JsonValue] = [1 / len(labels)] * len(labels)
    return {"label": labels[0], "probabilities": probabilities}
