"""Read a training CSV and check every cell before any training starts.

Line numbers in error messages are lines of the file: line 1 is the header, so the first data row
is line 2. That is the number an editor shows, which is where the user goes to fix the cell.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.errors import DataError
from service.model import Task

__all__ = ["MISSING_MARKERS", "TrainingData", "load_csv", "other_delimiter", "read_number"]

# Spellings of "no value" that pandas, R and spreadsheets write; compared case-insensitively.
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
# Delimiters that a spreadsheet writes when told "CSV" (";" where the decimal mark is a comma).
_OTHER_DELIMITERS = (";", "\t", "|")


def other_delimiter(header: Sequence[str], delimiter: str = ",") -> str | None:
    """The delimiter a header that lacks an expected column seems to be separated by, if any."""
    joined = delimiter.join(header)
    return next((d for d in _OTHER_DELIMITERS if d != delimiter and d in joined), None)


@dataclass(frozen=True)
class TrainingData:
    """A validated data file.

    `targets` is float64 (rows, outputs) for regression, int64 class indices (rows,) into
    `classes` for classification.
    """

    features: npt.NDArray[np.float64]
    targets: npt.NDArray[np.float64] | npt.NDArray[np.int64]
    feature_names: list[str]
    target_names: list[str]
    classes: list[str] | None
    file_name: str
    sha256: str

    @property
    def rows(self) -> int:
        return int(self.features.shape[0])


def _records(text: str, label: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each non-blank record; the line is where the record ends."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for cells in reader:
            if cells and any(cell.strip() for cell in cells):
                yield reader.line_num, cells
    except csv.Error as exc:
        raise DataError(f"{label} line {reader.line_num}: not valid CSV ({exc})") from exc


def _select_columns(
    header: list[str], targets: Sequence[str], features: Sequence[str] | None, where: str
) -> tuple[list[int], list[int]]:
    """Column indices of the features and targets; unknown or overlapping names are errors.

    `where` names the header line in messages, e.g. "data.csv line 1".
    """
    index = {name: position for position, name in enumerate(header)}
    if len(index) != len(header):
        twice = next(name for name in header if header.count(name) > 1)
        raise DataError(f"{where}: the header names column {twice!r} twice")
    for name in (*targets, *(features or ())):
        if name not in index:
            other = other_delimiter(header)
            if other is not None:
                raise DataError(
                    f"{where}: no column named {name!r}; the header does not split on ',' but "
                    f"has {other!r} in it, so the file seems separated by {other!r}: save it "
                    "as comma-separated CSV (a spreadsheet's 'CSV (comma delimited)')"
                )
            raise DataError(
                f"{where}: no column named {name!r}; the header has {', '.join(header)}"
            )
    if len(set(targets)) != len(targets):
        raise DataError(f"{where}: a target column is named twice in {list(targets)}")
    if features is None:
        if "" in header:
            raise DataError(
                f"{where}: column {header.index('') + 1} has no name (a saved pandas "
                "index?); name it, or choose the feature columns with --features"
            )
        features = [name for name in header if name not in targets]
    overlap = sorted(set(features) & set(targets))
    if overlap:
        raise DataError(f"{where}: column {overlap[0]!r} cannot be both a feature and a target")
    if not features:
        raise DataError(f"{where}: no feature columns are left once the targets are taken out")
    if len(set(features)) != len(features):
        raise DataError(f"{where}: a feature column is named twice in {list(features)}")
    return [index[name] for name in features], [index[name] for name in targets]


def read_number(cell: str, line: int, column: str, label: str) -> float:
    where = f"{label} line {line}, column {column!r}"
    text = cell.strip()
    if text.lower() in MISSING_MARKERS:
        raise DataError(f"{where}: missing value ({cell!r}); fill it in or drop the row")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {cell!r} is not a finite number")
    return value


def _label(cell: str, line: int, column: str, label: str) -> str:
    text = cell.strip()
    if text.lower() in MISSING_MARKERS:
        raise DataError(
            f"{label} line {line}, column {column!r}: missing class label ({cell!r}); "
            "fill it in or drop the row"
        )
    return text


def _numeric_key(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _sorted_classes(labels: set[str], column: str, label: str) -> list[str]:
    """Sorted class labels: numerically when every label is a number, else as strings."""
    by_number: dict[float, str] = {}
    for text in sorted(labels):
        number = _numeric_key(text)
        if number is None:
            return sorted(labels)
        if number in by_number:
            raise DataError(
                f"{label}, column {column!r}: labels {by_number[number]!r} and {text!r} are the "
                "same number spelt two ways; write each class one way"
            )
        by_number[number] = text
    return [by_number[number] for number in sorted(by_number)]


def load_csv(
    path: Path,
    targets: Sequence[str],
    features: Sequence[str] | None = None,
    task: Task = "regression",
) -> TrainingData:
    """Read and validate a CSV with a header row.

    Args:
        path: the CSV file.
        targets: target column names (one for classification, one or more for regression).
        features: feature columns; all other columns when None.
        task: regression (numeric targets) or classification (labels, strings or numbers).

    Returns:
        The parsed data with the file's sha256 (of its bytes) and name.

    Raises:
        DataError: unreadable file, unknown column, ragged row, missing or non-numeric cell,
            no data rows, or fewer than two classes. The message names the line and column.
    """
    label = path.name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the data file ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    if not targets:
        raise DataError(f"{label}: name at least one target column")
    if task == "classification" and len(targets) != 1:
        raise DataError(f"{label}: classification takes one target column, got {list(targets)}")

    records = _records(text, label)
    first = next(records, None)
    if first is None:
        raise DataError(f"{label}: the file is empty; it needs a header row and data rows")
    header = [name.strip() for name in first[1]]
    feature_idx, target_idx = _select_columns(header, targets, features, f"{label} line {first[0]}")
    feature_names = [header[i] for i in feature_idx]

    x_rows: list[list[float]] = []
    y_rows: list[list[float]] = []
    y_labels: list[str] = []
    target_name = header[target_idx[0]]
    for line, cells in records:
        if len(cells) != len(header):
            raise DataError(
                f"{label} line {line}: expected {len(header)} cells like the header, "
                f"got {len(cells)}"
            )
        x_rows.append([read_number(cells[i], line, header[i], label) for i in feature_idx])
        if task == "classification":
            y_labels.append(_label(cells[target_idx[0]], line, target_name, label))
        else:
            y_rows.append([read_number(cells[i], line, header[i], label) for i in target_idx])
    if not x_rows:
        raise DataError(f"{label}: the file has a header but no data rows")

    classes: list[str] | None = None
    y: npt.NDArray[np.float64] | npt.NDArray[np.int64]
    if task == "classification":
        classes = _sorted_classes(set(y_labels), target_name, label)
        if len(classes) < 2:
            raise DataError(
                f"{label}, column {target_name!r}: classification needs at least two classes, "
                f"found only {classes}"
            )
        position = {name: i for i, name in enumerate(classes)}
        y = np.array([position[name] for name in y_labels], dtype=np.int64)
    else:
        y = np.array(y_rows, dtype=np.float64)
    return TrainingData(
        features=np.array(x_rows, dtype=np.float64),
        targets=y,
        feature_names=feature_names,
        target_names=[header[i] for i in target_idx],
        classes=classes,
        file_name=path.name,
        sha256=hashlib.sha256(raw).hexdigest(),
    )
