"""Names and task of an imported network: given on the command line, or inferred where safe."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.errors import DataError, ModelImportError
from service.importers.network import ImportedNetwork
from service.importers.options import ImportOptions
from service.model import Task
from service.training.data import TrainingData, load_csv

__all__ = ["Calibration", "Metadata", "calibration_data", "resolve_metadata"]

# Labelled rows and their targets: float64 (rows, outputs), or int64 class positions (rows,).
Calibration = tuple[TrainingData, npt.NDArray[np.float64] | npt.NDArray[np.int64]]


@dataclass(frozen=True)
class Metadata:
    """What the manifest says about the columns: task, features, targets, classes."""

    task: Task
    features: list[str]
    targets: list[str]
    classes: list[str] | None


def _task(network: ImportedNetwork, options: ImportOptions) -> Task:
    if network.head is not None:
        if options.task == "regression":
            raise ModelImportError(
                f"the network ends in a {network.head}, so it classifies; --task regression "
                "contradicts it"
            )
        return "classification"
    if options.task is not None:
        return options.task
    if options.classes is not None:
        return "classification"
    if network.n_outputs == 1:
        return "regression"
    raise ModelImportError(
        f"the network has {network.n_outputs} outputs and no Softmax, so they may be regression "
        "targets or class logits; pass --task regression or --task classification"
    )


def _header(path: str) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [name.strip() for name in next(csv.reader(handle), [])]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read its header row ({exc})") from exc


def _features(network: ImportedNetwork, options: ImportOptions, targets: list[str]) -> list[str]:
    n = network.n_features
    if options.features is not None:
        names = list(options.features)
        source = "--features"
    elif options.features_from is not None:
        names = [c for c in _header(str(options.features_from)) if c not in targets]
        source = f"the header of {options.features_from.name} (less the target columns)"
    elif options.calibrate is not None:
        names = [c for c in _header(str(options.calibrate)) if c not in targets]
        source = f"the header of {options.calibrate.name} (less the target columns)"
    else:
        raise ModelImportError(
            f"the network takes {n} features but the file does not name them; pass --features "
            "a,b,... in input order, or --features-from data.csv"
        )
    if len(names) != n:
        raise ModelImportError(
            f"the network takes {n} features, but {source} names {len(names)}: {', '.join(names)}"
        )
    if len(set(names)) != n:
        raise ModelImportError(f"feature names must be unique, got {', '.join(names)}")
    return names


def resolve_metadata(network: ImportedNetwork, options: ImportOptions) -> Metadata:
    """Task and column names, checked against the network's widths.

    Raises:
        ModelImportError: a name count that does not fit, or a task that cannot be inferred.
    """
    task = _task(network, options)
    n_out = network.n_outputs
    if task == "classification":
        if n_out < 2:
            raise ModelImportError(f"classification needs at least two outputs, got {n_out}")
        classes = list(options.classes or [str(i) for i in range(n_out)])
        if len(classes) != n_out:
            raise ModelImportError(
                f"the network has {n_out} outputs but --classes names {len(classes)}"
            )
        targets = list(options.targets or ("label",))
        if len(targets) != 1:
            raise ModelImportError(f"classification has one target column, got {targets}")
    else:
        classes = None
        default = ["y"] if n_out == 1 else [f"y{i}" for i in range(n_out)]
        targets = list(options.targets or default)
        if len(targets) != n_out:
            raise ModelImportError(
                f"the network has {n_out} outputs but --target names {len(targets)}: "
                f"{', '.join(targets)}"
            )
    return Metadata(task, _features(network, options, targets), targets, classes)


def calibration_data(options: ImportOptions, meta: Metadata) -> Calibration | None:
    """The calibration CSV checked cell by cell, with targets as the bundle numbers them."""
    if options.calibrate is None:
        return None
    data = load_csv(options.calibrate, meta.targets, meta.features, meta.task)
    if data.classes is None:
        return data, np.asarray(data.targets, dtype=np.float64)
    known = {label: position for position, label in enumerate(meta.classes or [])}
    unknown = [label for label in data.classes if label not in known]
    if unknown:
        raise DataError(
            f"{data.file_name}: label {unknown[0]!r} is not one of the classes "
            f"{', '.join(meta.classes or [])}; name them with --classes in output order"
        )
    mapping = np.array([known[label] for label in data.classes], dtype=np.int64)
    return data, mapping[np.asarray(data.targets, dtype=np.int64)]
