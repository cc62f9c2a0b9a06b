"""A labelled CSV read for one model: its features and targets, and which rows to score.

Any CSV with the model's feature and target columns works (other columns are ignored). Rows can
be all of them, or, for the very file a bundle was trained on, the validation or training rows of
that run: the split is re-created from the manifest's seed and validation fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from service.bundle import Manifest
from service.errors import DataError
from service.training.data import load_csv
from service.training.pipeline import training_split

__all__ = ["ROW_SELECTIONS", "LabelledRows", "RowSelection", "load_labelled"]

RowSelection = Literal["all", "validation", "train"]
ROW_SELECTIONS: tuple[str, ...] = get_args(RowSelection)


@dataclass(frozen=True)
class LabelledRows:
    """Raw features (rows, features) and targets of the selected rows.

    Targets are regression values (rows, outputs) in original units, or class indices (rows,)
    in the order of the manifest's classes.
    """

    features: npt.NDArray[np.float64]
    targets: npt.NDArray[np.float64] | npt.NDArray[np.int64]
    file_name: str
    selection: RowSelection

    @property
    def rows(self) -> int:
        return int(self.features.shape[0])


def _class_indices(
    found: list[str], indices: npt.NDArray[np.int64], manifest: Manifest, file_name: str
) -> npt.NDArray[np.int64]:
    """Re-index labels from the file's own sorted classes to the manifest's class order."""
    known = {label: position for position, label in enumerate(manifest.classes or [])}
    unknown = [label for label in found if label not in known]
    if unknown:
        raise DataError(
            f"{file_name}, column {manifest.targets[0]!r}: label {unknown[0]!r} is not a class of "
            f"model {manifest.name!r}, whose classes are {', '.join(manifest.classes or [])}"
        )
    mapping = np.array([known[label] for label in found], dtype=np.int64)
    remapped: npt.NDArray[np.int64] = mapping[indices]
    return remapped


def _selected(
    manifest: Manifest, rows: int, sha256: str, selection: RowSelection, name: str
) -> npt.NDArray[np.int64]:
    if selection == "all":
        return np.arange(rows, dtype=np.int64)
    training = manifest.training
    if training is None:
        raise DataError(
            f"model {manifest.name!r} was imported, not trained by dropserve, so it has no "
            f"{selection} rows to re-create; pass --rows all"
        )
    if sha256 != training.data_sha256:
        raise DataError(
            f"{name} is not the file model {manifest.name!r} was trained on (its sha256 differs "
            f"from the manifest's {training.data_sha256[:12]}...), so its {selection} rows cannot "
            "be re-created; pass --rows all to score every row of this file"
        )
    if not training.validation_fraction:
        raise DataError(
            f"model {manifest.name!r} was trained without a validation split, so it has no "
            f"{selection} rows to re-create; pass --rows all"
        )
    train, validation = training_split(rows, training.validation_fraction, training.seed)
    return np.sort(validation if selection == "validation" else train)


def load_labelled(path: Path, manifest: Manifest, selection: RowSelection = "all") -> LabelledRows:
    """Read the model's features and targets from a CSV, checked cell by cell.

    Args:
        path: a CSV with a header that names every feature and target column of the model.
        manifest: the model's manifest.
        selection: "all" rows, or the "validation" or "train" rows of the run that trained the
            model (then the file must be the very file it was trained on).

    Raises:
        DataError: a missing column, a bad cell, an unknown class label, or a row selection that
            cannot be re-created for this file.
    """
    data = load_csv(path, manifest.targets, manifest.features, manifest.task)
    rows = _selected(manifest, data.rows, data.sha256, selection, data.file_name)
    targets: npt.NDArray[np.float64] | npt.NDArray[np.int64]
    if data.classes is not None:
        labels = np.asarray(data.targets, dtype=np.int64)
        targets = _class_indices(data.classes, labels, manifest, data.file_name)[rows]
    else:
        targets = np.asarray(data.targets, dtype=np.float64)[rows]
    return LabelledRows(data.features[rows], targets, data.file_name, selection)
