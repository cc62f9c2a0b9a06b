"""Turn request rows (lists in feature order, or objects keyed by feature name) into a matrix.

Protocol-neutral: both the JSON API and the Open Inference Protocol adapter validate through here,
so every client gets the same messages naming the row, the feature and the fix. A protocol that
has already decoded a numeric tensor (binary tensor data) passes it as a 2-D array and skips the
per-value Python checks.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from service.errors import InvalidInputError

__all__ = ["Rows", "encode_instances"]

# Rows as sent in JSON, or an already-decoded (rows, features) numeric array.
Rows: TypeAlias = Sequence[Any] | npt.NDArray[Any]

_PREVIEW = 12
# A JSON integer past the largest float (about 1.8e308) cannot become a feature value.
_FLOAT_MAX = sys.float_info.max
# A number as JSON writes it; float() also takes "1_000", "nan" and "inf", which JSON does not.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _feature_list(features: Sequence[str]) -> str:
    shown = ", ".join(features[:_PREVIEW])
    more = len(features) - _PREVIEW
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _shown(value: Any) -> str:
    """A refused value as the client wrote it: JSON's null, a string with a hint when it holds
    a number (a CSV or form value sent as text is the usual cause)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if isinstance(value, str):
        text = value.strip()
        if _JSON_NUMBER.fullmatch(text) and math.isfinite(float(text)):
            return f"{shown} (a string); send {text} without quotes"
        return f"{shown} (a string)"
    return shown


def _bad_value(row: int, feature: str, value: Any) -> InvalidInputError:
    if isinstance(value, float):
        return InvalidInputError(
            f"instances[{row}], feature '{feature}': value must be a finite number, got {value}"
        )
    if type(value) is int:  # past the float range; str() of it may itself be refused
        return InvalidInputError(
            f"instances[{row}], feature '{feature}': value must be a finite number, got an "
            "integer too large for a 64-bit float"
        )
    return InvalidInputError(
        f"instances[{row}], feature '{feature}': value must be a number, got {_shown(value)}"
    )


def _is_number(value: Any) -> bool:
    # bool is an int subclass; a JSON true/false is not a feature value.
    kind = type(value)
    return (kind is float and math.isfinite(value)) or (kind is int and abs(value) <= _FLOAT_MAX)


def _check_row_count(n_rows: int, max_rows: int | None) -> None:
    if n_rows == 0:
        raise InvalidInputError("instances is empty: send at least one row")
    if max_rows is not None and n_rows > max_rows:
        raise InvalidInputError(
            f"instances has {n_rows} rows; the limit is {max_rows} per request, split the batch"
        )


def _wrong_length(row: int, got: int, features: Sequence[str]) -> InvalidInputError:
    return InvalidInputError(
        f"instances[{row}] has {got} values but the model expects {len(features)} "
        f"features in this order: {_feature_list(features)}"
    )


def _encode_array(
    array: npt.NDArray[Any], features: Sequence[str], max_rows: int | None
) -> npt.NDArray[np.float64]:
    if array.ndim != 2:
        raise InvalidInputError("instances must be a list of rows")
    _check_row_count(array.shape[0], max_rows)
    if array.shape[1] != len(features):
        raise _wrong_length(0, array.shape[1], features)  # every row has the same length
    # A copy: the engines get an array they own, never a read-only view of a request buffer.
    matrix = np.array(array, dtype=np.float64)
    bad = np.argwhere(~np.isfinite(matrix))
    if bad.size:
        r, c = (int(i) for i in bad[0])
        raise _bad_value(r, features[c], float(matrix[r, c]))
    return matrix


_NUMBER_TYPES = frozenset({int, float})


def _encode_number_lists(
    instances: Sequence[Any], n_features: int
) -> npt.NDArray[np.float64] | None:
    """The common case in C speed: every row a list of `n_features` finite ints or floats.

    Returns None whenever anything is off, and the per-value path below then finds the first
    problem and names it.
    """
    if not all(type(row) is list and len(row) == n_features for row in instances):
        return None
    if not {type(value) for row in instances for value in row} <= _NUMBER_TYPES:
        return None  # bool, str, None, nested lists: the slow path says which and where
    try:
        matrix = np.array(instances, dtype=np.float64)
    except (OverflowError, ValueError):
        return None
    if not np.isfinite(matrix).all():
        return None
    return matrix


def encode_instances(
    instances: Rows,
    features: Sequence[str],
    *,
    max_rows: int | None = None,
    targets: Sequence[str] = (),
) -> npt.NDArray[np.float64]:
    """Validate rows against a model's features and return them as a (rows, features) matrix.

    Args:
        instances: each row a list of numbers in feature order, or an object keyed by name;
            or a 2-D numeric array in feature order.
        features: the model's feature names, in order.
        max_rows: refuse more rows than this.
        targets: the model's target names, so that a row that sends one (a row copied from the
            training data) is told so rather than that the name is unknown.

    Raises:
        InvalidInputError: empty input, too many rows, a row of the wrong length, unknown or
            missing feature names, or a value that is not a finite number.
    """
    if isinstance(instances, np.ndarray):
        return _encode_array(instances, features, max_rows)
    if not isinstance(instances, Sequence) or isinstance(instances, str | bytes):
        raise InvalidInputError("instances must be a list of rows")
    n_rows, n_features = len(instances), len(features)
    _check_row_count(n_rows, max_rows)
    fast = _encode_number_lists(instances, n_features)
    if fast is not None:
        return fast
    index = {name: i for i, name in enumerate(features)}
    matrix = np.empty((n_rows, n_features), dtype=np.float64)
    for r, row in enumerate(instances):
        if isinstance(row, Mapping):
            missing = [name for name in features if name not in row]
            unknown = [str(key) for key in row if key not in index]
            sent_targets = [name for name in unknown if name in targets]
            if sent_targets:
                which = "targets" if len(sent_targets) > 1 else "target"
                raise InvalidInputError(
                    f"instances[{r}] has {', '.join(map(repr, sent_targets))}, the model's "
                    f"{which} (what it predicts), not a feature; leave it out and send: "
                    f"{_feature_list(features)}"
                )
            if unknown:
                raise InvalidInputError(
                    f"instances[{r}] has unknown feature(s) {', '.join(map(repr, unknown))}; "
                    f"expected: {_feature_list(features)}"
                )
            if missing:
                raise InvalidInputError(
                    f"instances[{r}] is missing feature(s) {', '.join(map(repr, missing))}; "
                    f"expected: {_feature_list(features)}"
                )
            values: Sequence[Any] = [row[name] for name in features]
        elif isinstance(row, Sequence) and not isinstance(row, str | bytes):
            if len(row) != n_features:
                raise _wrong_length(r, len(row), features)
            values = row
        else:
            raise InvalidInputError(
                f"instances[{r}] must be a list of {n_features} numbers or an object keyed by "
                f"feature name, got {type(row).__name__}"
            )
        for c, value in enumerate(values):
            if not _is_number(value):
                raise _bad_value(r, features[c], value)
        matrix[r] = values
    return matrix
