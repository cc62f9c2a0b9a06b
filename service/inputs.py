"""Turn request rows (lists in feature order, or objects keyed by feature name) into a matrix.

Protocol-neutral: both the JSON API and the Open Inference Protocol adapter validate through here,
so every client gets the same messages naming the row, the feature and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from service.errors import InvalidInputError

__all__ = ["encode_instances"]

_PREVIEW = 12


def _feature_list(features: Sequence[str]) -> str:
    shown = ", ".join(features[:_PREVIEW])
    more = len(features) - _PREVIEW
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _bad_value(row: int, feature: str, value: Any) -> InvalidInputError:
    if isinstance(value, float):
        return InvalidInputError(
            f"instances[{row}], feature '{feature}': value must be a finite number, got {value}"
        )
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return InvalidInputError(
        f"instances[{row}], feature '{feature}': value must be a number, got {shown}"
    )


def _is_number(value: Any) -> bool:
    # bool is an int subclass; a JSON true/false is not a feature value.
    kind = type(value)
    return (kind is float and math.isfinite(value)) or kind is int


def encode_instances(
    instances: Sequence[Any], features: Sequence[str], *, max_rows: int | None = None
) -> npt.NDArray[np.float64]:
    """Validate rows against a model's features and return them as a (rows, features) matrix.

    Args:
        instances: each row a list of numbers in feature order, or an object keyed by name.
        features: the model's feature names, in order.
        max_rows: refuse more rows than this.

    Raises:
        InvalidInputError: empty input, too many rows, a row of the wrong length, unknown or
            missing feature names, or a value that is not a finite number.
    """
    if not isinstance(instances, Sequence) or isinstance(instances, str | bytes):
        raise InvalidInputError("instances must be a list of rows")
    n_rows, n_features = len(instances), len(features)
    if n_rows == 0:
        raise InvalidInputError("instances is empty: send at least one row")
    if max_rows is not None and n_rows > max_rows:
        raise InvalidInputError(
            f"instances has {n_rows} rows; the limit is {max_rows} per request, split the batch"
        )
    index = {name: i for i, name in enumerate(features)}
    matrix = np.empty((n_rows, n_features), dtype=np.float64)
    for r, row in enumerate(instances):
        if isinstance(row, Mapping):
            missing = [name for name in features if name not in row]
            unknown = [str(key) for key in row if key not in index]
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
                raise InvalidInputError(
                    f"instances[{r}] has {len(row)} values but the model expects {n_features} "
                    f"features in this order: {_feature_list(features)}"
                )
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
