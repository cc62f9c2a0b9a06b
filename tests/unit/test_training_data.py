"""Training CSVs: every bad cell is refused with its line and column before anything trains."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from service.errors import DataError
from service.model import Task
from service.training import load_csv
from tests.training_csv import write_csv

HEADER = ["cement", "slag", "age", "strength"]
GOOD = [[540.0, 0.0, 28, 79.99], [332.5, 142.5, 270, 40.27], [198.6, 132.4, 365, 44.3]]


def table(tmp_path: Path, *rows: list[object], header: list[str] = HEADER) -> Path:
    return write_csv(tmp_path / "data.csv", header, [*GOOD, *rows])


def refused(
    path: Path,
    *parts: str,
    targets: list[str],
    features: list[str] | None = None,
    task: Task = "regression",
) -> None:
    with pytest.raises(DataError) as info:
        load_csv(path, targets, features, task)
    for part in parts:
        assert part in info.value.message, info.value.message


def test_reads_features_targets_and_fingerprint(tmp_path: Path) -> None:
    path = table(tmp_path)
    data = load_csv(path, ["strength"])
    assert data.feature_names == ["cement", "slag", "age"]
    assert data.target_names == ["strength"]
    assert data.classes is None
    np.testing.assert_array_equal(data.features, np.array(GOOD)[:, :3])
    np.testing.assert_array_equal(data.targets, np.array(GOOD)[:, 3:])
    assert data.file_name == "data.csv"
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_features_narrow_the_columns_and_targets_can_be_several(tmp_path: Path) -> None:
    data = load_csv(table(tmp_path), ["strength", "age"], features=["slag"])
    assert data.feature_names == ["slag"]
    assert data.targets.shape == (3, 2)


@pytest.mark.parametrize("missing", ["", "NA", "NaN", "nan", " n/a "])
def test_missing_value_names_line_and_column(tmp_path: Path, missing: str) -> None:
    # Header is line 1, the three good rows are lines 2-4, so the bad row is line 5.
    path = table(tmp_path, [300.0, missing, 28, 30.0])
    refused(path, "data.csv line 5, column 'slag'", "missing value", targets=["strength"])


def test_non_numeric_cell_names_line_and_column(tmp_path: Path) -> None:
    path = table(tmp_path, [300.0, 1.0, 28, 30.0], [300.0, "abc", 28, 30.0])
    refused(path, "data.csv line 6, column 'slag': 'abc' is not a number", targets=["strength"])


def test_non_numeric_regression_target_is_refused(tmp_path: Path) -> None:
    path = table(tmp_path, [300.0, 1.0, 28, "strong"])
    refused(path, "line 5, column 'strength': 'strong' is not a number", targets=["strength"])


def test_infinite_value_is_refused(tmp_path: Path) -> None:
    path = table(tmp_path, [300.0, "inf", 28, 1.0])
    refused(path, "line 5", "not a finite number", targets=["strength"])


@pytest.mark.parametrize(
    ("targets", "features", "unknown"),
    [(["strenght"], None, "'strenght'"), (["strength"], ["cement", "ash"], "'ash'")],
)
def test_unknown_column_lists_the_header(
    tmp_path: Path, targets: list[str], features: list[str] | None, unknown: str
) -> None:
    path = table(tmp_path)
    message = (f"no column named {unknown}", "cement, slag, age, strength")
    refused(path, *message, targets=targets, features=features)


def test_target_cannot_also_be_a_feature(tmp_path: Path) -> None:
    refused(table(tmp_path), "'age' cannot be both", targets=["age"], features=["cement", "age"])


def test_ragged_row_names_its_line(tmp_path: Path) -> None:
    path = table(tmp_path, [1.0, 2.0, 3.0])
    refused(path, "line 5: expected 4 cells like the header, got 3", targets=["strength"])


def test_header_without_rows_and_empty_file(tmp_path: Path) -> None:
    refused(write_csv(tmp_path / "head.csv", HEADER, []), "no data rows", targets=["strength"])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    refused(empty, "the file is empty", targets=["strength"])


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    refused(tmp_path / "nope.csv", "cannot read", targets=["strength"])


def test_classes_are_sorted_numerically_when_numeric(tmp_path: Path) -> None:
    rows = [[float(i), str(label)] for i, label in enumerate([10, 2, 1, 2, 10])]
    data = load_csv(write_csv(tmp_path / "c.csv", ["x", "k"], rows), ["k"], task="classification")
    assert data.classes == ["1", "2", "10"]
    assert data.targets.tolist() == [2, 1, 0, 1, 2]
    assert data.targets.dtype == np.int64


def test_string_classes_are_sorted_as_strings(tmp_path: Path) -> None:
    rows = [[1.0, "versicolor"], [2.0, "setosa"], [3.0, "virginica"], [4.0, "setosa"]]
    data = load_csv(write_csv(tmp_path / "c.csv", ["x", "k"], rows), ["k"], task="classification")
    assert data.classes == ["setosa", "versicolor", "virginica"]
    assert data.targets.tolist() == [1, 0, 2, 0]


def test_one_class_is_not_enough(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["x", "k"], [[1.0, "a"], [2.0, "a"]])
    refused(path, "column 'k'", "at least two classes", targets=["k"], task="classification")


def test_missing_class_label_names_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["x", "k"], [[1.0, "a"], [2.0, "b"], [3.0, "NA"]])
    with pytest.raises(DataError, match=re.escape("c.csv line 4, column 'k': missing class label")):
        load_csv(path, ["k"], task="classification")


def test_one_number_spelt_two_ways_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["x", "k"], [[1.0, "1"], [2.0, "1.0"], [3.0, "2"]])
    refused(path, "'1' and '1.0'", targets=["k"], task="classification")


def test_header_problems_are_refused(tmp_path: Path) -> None:
    twice = write_csv(tmp_path / "twice.csv", ["a", "a", "y"], [[1, 2, 3]])
    refused(twice, "twice.csv line 1: the header names column 'a' twice", targets=["y"])
    unnamed = write_csv(tmp_path / "index.csv", ["", "a", "y"], [[0, 2, 3], [1, 4, 5]])
    refused(unnamed, "index.csv line 1: column 1 has no name", targets=["y"])
    # Choosing the features explicitly leaves the unnamed column out.
    assert load_csv(unnamed, ["y"], ["a"]).feature_names == ["a"]
