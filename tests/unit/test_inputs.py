"""Row validation: a decoded numeric array gets the same result and messages as JSON rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.dataplane.inputs import encode_instances
from service.errors import InvalidInputError

FEATURES = ["a", "b", "c"]
ROWS = [[1.0, 2.0, 3.0], [4.0, 5.5, -6.0]]


def message(instances: object, max_rows: int | None = None) -> str:
    with pytest.raises(InvalidInputError) as caught:
        encode_instances(instances, FEATURES, max_rows=max_rows)  # type: ignore[arg-type]
    return caught.value.message


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint64])
def test_an_array_equals_its_rows(dtype: type) -> None:
    rows = [[1, 2, 3], [4, 5, 6]]
    got = encode_instances(np.asarray(rows, dtype=dtype), FEATURES)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, encode_instances(rows, FEATURES))


def test_a_read_only_array_is_copied() -> None:
    buffer = np.asarray(ROWS, dtype=np.float64).tobytes()
    view = np.frombuffer(buffer, dtype=np.float64).reshape(2, 3)
    got = encode_instances(view, FEATURES)
    assert got.flags.writeable
    assert not np.shares_memory(got, view)


@pytest.mark.parametrize(
    ("rows", "array", "max_rows"),
    [
        ([], np.empty((0, 3)), None),
        (ROWS, np.asarray(ROWS), 1),
        ([[1.0, 2.0]], np.asarray([[1.0, 2.0]]), None),
        ([[1.0, math.nan, 3.0]], np.asarray([[1.0, math.nan, 3.0]]), None),
        ([ROWS[0], [1.0, 2.0, math.inf]], np.asarray([ROWS[0], [1.0, 2.0, math.inf]]), None),
    ],
    ids=["empty", "too-many-rows", "wrong-width", "nan", "inf-in-row-1"],
)
def test_an_array_gets_the_same_messages_as_rows(
    rows: list[list[float]], array: np.ndarray, max_rows: int | None
) -> None:
    assert message(array, max_rows) == message(rows, max_rows)


def test_an_array_must_be_two_dimensional() -> None:
    assert message(np.zeros(3)) == "instances must be a list of rows"
