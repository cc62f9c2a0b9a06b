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


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "feature 'b': value must be a number, got null"),
        ("46.3", "feature 'b': value must be a number, got '46.3' (a string); send 46.3 without"),
        (" -1e3 ", "got ' -1e3 ' (a string); send -1e3 without quotes"),
        ("abc", "feature 'b': value must be a number, got 'abc' (a string)"),
    ],
    ids=["null", "number-as-string", "exponent-as-string", "word"],
)
def test_a_value_that_is_not_a_number_is_named_as_json_writes_it(
    value: object, expected: str
) -> None:
    got = message([[1.0, value, 3.0]])
    assert expected in got
    assert "None" not in got


@pytest.mark.parametrize("text", ["NaN", "Infinity", "1_000", "0x10", "1e400"])
def test_a_string_that_is_no_finite_json_number_gets_no_hint_to_unquote_it(text: str) -> None:
    got = message([[1.0, text, 3.0]])
    assert got.endswith(f"got {text!r} (a string)")


def test_a_target_sent_as_a_feature_is_called_the_target() -> None:
    row = {"a": 1.0, "b": 2.0, "c": 3.0, "y": 4.0, "other": 5.0}
    with pytest.raises(InvalidInputError) as caught:
        encode_instances([row], FEATURES, targets=["y"])
    assert caught.value.message == (
        "instances[0] has 'y', the model's target (what it predicts), not a feature; leave it "
        "out and send: a, b, c"
    )


def test_an_unknown_name_is_still_unknown_beside_targets() -> None:
    row = {"a": 1.0, "b": 2.0, "c": 3.0, "other": 5.0}
    with pytest.raises(InvalidInputError) as caught:
        encode_instances([row], FEATURES, targets=["y"])
    assert caught.value.message == "instances[0] has unknown feature(s) 'other'; expected: a, b, c"
