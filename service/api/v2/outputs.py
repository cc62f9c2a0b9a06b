"""The output tensors of each task and mode: their metadata, and their values from a result.

Deterministic mode (`"mode": "predict"`, the default):
    regression      prediction          FP32   [-1, outputs]
    classification  probabilities       FP32   [-1, classes]
                    label               BYTES  [-1]           the class label, e.g. b"setosa"

Uncertainty mode (`"mode": "uncertainty"`, Monte-Carlo dropout):
    regression      mean, variance, std, epistemic_variance, aleatoric_variance, lower, upper
                                        FP32   [-1, outputs]
    classification  probabilities, variance, std
                                        FP32   [-1, classes]
                    predictive_entropy, expected_entropy, mutual_information
                                        FP32   [-1]           nats
                    label               BYTES  [-1]
    both            draws               FP32   [-1, -1, outputs]   the T pass outputs per row;
                                        only when asked for by name in `outputs`

A request without `outputs` gets every output of its mode except `draws`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from service.bundle import Manifest
from service.dataplane import Prediction, RegressionStats, Uncertainty
from service.errors import InvalidInputError

__all__ = [
    "DRAWS",
    "TensorSpec",
    "output_specs",
    "prediction_tensors",
    "select_outputs",
    "uncertainty_tensors",
]

DRAWS = "draws"

_REGRESSION_MC = (
    "mean",
    "variance",
    "std",
    "epistemic_variance",
    "aleatoric_variance",
    "lower",
    "upper",
)
_CLASS_MC_PER_CLASS = ("probabilities", "variance", "std")
_CLASS_MC_PER_ROW = ("predictive_entropy", "expected_entropy", "mutual_information")


@dataclass(frozen=True)
class TensorSpec:
    """One output tensor as the model metadata describes it."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def output_specs(manifest: Manifest, mode: str) -> list[TensorSpec]:
    """Every output a request in `mode` may ask for, in response order."""
    width = manifest.n_outputs
    per_output = (-1, width)
    if manifest.task == "regression":
        if mode == "predict":
            return [TensorSpec("prediction", "FP32", per_output)]
        specs = [TensorSpec(name, "FP32", per_output) for name in _REGRESSION_MC]
    elif mode == "predict":
        return [
            TensorSpec("probabilities", "FP32", per_output),
            TensorSpec("label", "BYTES", (-1,)),
        ]
    else:
        specs = [TensorSpec(name, "FP32", per_output) for name in _CLASS_MC_PER_CLASS]
        specs += [TensorSpec(name, "FP32", (-1,)) for name in _CLASS_MC_PER_ROW]
        specs.append(TensorSpec("label", "BYTES", (-1,)))
    return [*specs, TensorSpec(DRAWS, "FP32", (-1, -1, width))]


def select_outputs(manifest: Manifest, mode: str, requested: Sequence[str] | None) -> list[str]:
    """The output names to return, in the requested order; every default one when none is named.

    Raises:
        InvalidInputError: a name the mode does not produce (saying which mode does), or a repeat.
    """
    available = [spec.name for spec in output_specs(manifest, mode)]
    if requested is None:
        return [name for name in available if name != DRAWS]
    seen: set[str] = set()
    for name in requested:
        if name in seen:
            raise InvalidInputError(f"output '{name}' is requested twice; name it once")
        seen.add(name)
        if name in available:
            continue
        other = "uncertainty" if mode == "predict" else "predict"
        if name in (spec.name for spec in output_specs(manifest, other)):
            raise InvalidInputError(
                f"output '{name}' is produced in mode '{other}', not '{mode}'; "
                f'set "parameters": {{"mode": "{other}"}} in the request'
            )
        raise InvalidInputError(
            f"model '{manifest.name}' has no output '{name}' in mode '{mode}'; "
            f"outputs: {', '.join(available)}"
        )
    return list(requested)


def _labels(manifest: Manifest, index: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
    classes = manifest.classes or []
    return np.asarray([classes[i] for i in index.tolist()], dtype=np.object_)


def _fp32(array: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    # MC summaries are float64; the protocol outputs are FP32.
    with np.errstate(over="ignore"):
        values = array.astype(np.float32)
    if not np.isfinite(values).all():  # sent as JSON it would be a silent null
        raise InvalidInputError(
            "an output is beyond the FP32 range of the protocol's tensors: the feature values "
            "are far outside the range the model was trained on; send values of a realistic "
            "magnitude (/v1 uncertainty answers in 64-bit floats)"
        )
    return values


def prediction_tensors(result: Prediction) -> dict[str, npt.NDArray[np.generic]]:
    """Deterministic outputs by name."""
    values = result.values.astype(np.float32)
    if result.model.manifest.task == "regression":
        return {"prediction": values}
    label = _labels(result.model.manifest, result.values.argmax(axis=1))
    return {"probabilities": values, "label": label}


def uncertainty_tensors(result: Uncertainty) -> dict[str, npt.NDArray[np.generic]]:
    """Monte-Carlo dropout outputs by name (`draws` only when the result carries them)."""
    summary = result.summary
    tensors: dict[str, npt.NDArray[np.generic]] = {}
    if isinstance(summary, RegressionStats):
        for name in _REGRESSION_MC:
            tensors[name] = _fp32(getattr(summary, name))
    else:
        for name in _CLASS_MC_PER_CLASS + _CLASS_MC_PER_ROW:
            tensors[name] = _fp32(getattr(summary, name))
        tensors["label"] = _labels(result.model.manifest, summary.label)
    if result.draws is not None:
        # (T, rows, outputs) -> (rows, T, outputs): the batch dimension comes first.
        tensors[DRAWS] = _fp32(result.draws.swapaxes(0, 1))
    return tensors
