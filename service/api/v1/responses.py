"""Shape data-plane results into the JSON API's response models.

The inference responses are built with `model_construct`: their values come from the engines
already typed (Python floats from `tolist()`), and validating thousands of them again on every
request cost more than the prediction of a small model.
"""

from __future__ import annotations

from service.api.v1.schemas import (
    ClassPrediction,
    ClassUncertainty,
    Limits,
    ModelDetail,
    PredictResponse,
    RegressionUncertainty,
    UncertaintyResponse,
)
from service.config import Settings
from service.dataplane import LoadedModel, Prediction, RegressionStats, Uncertainty

__all__ = ["model_detail", "predict_response", "uncertainty_response"]


def predict_response(result: Prediction) -> PredictResponse:
    manifest = result.model.manifest
    values = result.values.tolist()
    predictions: list[list[float]] | list[ClassPrediction]
    if manifest.classes:
        labels = manifest.classes
        best = result.values.argmax(axis=1).tolist()
        predictions = [
            ClassPrediction.model_construct(label=labels[i], probabilities=row)
            for i, row in zip(best, values, strict=True)
        ]
    else:
        predictions = values
    return PredictResponse.model_construct(
        model=manifest.name,
        version=manifest.version,
        task=manifest.task,
        outputs=manifest.output_names,
        predictions=predictions,
    )


def uncertainty_response(result: Uncertainty) -> UncertaintyResponse:
    manifest = result.model.manifest
    summary = result.summary
    draws = None if result.draws is None else result.draws.swapaxes(0, 1).tolist()
    predictions: list[RegressionUncertainty] | list[ClassUncertainty]
    if isinstance(summary, RegressionStats):
        columns = zip(
            summary.mean.tolist(),
            summary.variance.tolist(),
            summary.std.tolist(),
            summary.epistemic_variance.tolist(),
            summary.aleatoric_variance.tolist(),
            summary.lower.tolist(),
            summary.upper.tolist(),
            strict=True,
        )
        predictions = [
            RegressionUncertainty.model_construct(
                mean=mean,
                variance=var,
                std=std,
                epistemic_variance=epi,
                aleatoric_variance=alea,
                lower=lower,
                upper=upper,
                samples=None if draws is None else draws[row],
            )
            for row, (mean, var, std, epi, alea, lower, upper) in enumerate(columns)
        ]
    else:
        labels = manifest.classes or []
        rows = zip(
            summary.label.tolist(),
            summary.probabilities.tolist(),
            summary.variance.tolist(),
            summary.std.tolist(),
            summary.predictive_entropy.tolist(),
            summary.expected_entropy.tolist(),
            summary.mutual_information.tolist(),
            strict=True,
        )
        predictions = [
            ClassUncertainty.model_construct(
                label=labels[label],
                probabilities=probs,
                variance=var,
                std=std,
                predictive_entropy=entropy,
                expected_entropy=expected,
                mutual_information=mutual,
                samples=None if draws is None else draws[row],
            )
            for row, (label, probs, var, std, entropy, expected, mutual) in enumerate(rows)
        ]
    return UncertaintyResponse.model_construct(
        model=manifest.name,
        version=manifest.version,
        task=manifest.task,
        outputs=manifest.output_names,
        samples=result.samples,
        seed=result.seed,
        interval=result.interval if manifest.task == "regression" else None,
        device=result.device,
        precision=result.precision,
        predictions=predictions,
    )


def model_detail(model: LoadedModel, versions: list[int], settings: Settings) -> ModelDetail:
    manifest = model.manifest
    return ModelDetail(
        name=manifest.name,
        version=manifest.version,
        versions=versions,
        task=manifest.task,
        description=manifest.description,
        features=manifest.features,
        outputs=manifest.output_names,
        classes=manifest.classes,
        architecture=manifest.architecture.model_dump(),
        tau=manifest.tau,
        metrics=manifest.metrics,
        examples=manifest.examples or [list(manifest.normalization.feature_mean)],
        created_at=manifest.created_at.isoformat(),
        onnx=manifest.onnx.model_dump(),
        limits=Limits(
            default_samples=settings.default_samples,
            max_samples=settings.max_samples,
            max_rows=settings.max_rows,
            max_work=settings.max_work,
            max_return_samples=settings.max_return_samples,
        ),
        device=model.device,
    )
