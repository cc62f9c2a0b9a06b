"""Each request's answer from one batch's Monte-Carlo passes.

A batch stacks the rows of several requests; their passes come back as one (T, rows, outputs)
tensor. Requests whose outputs overflowed get their own error, the others their summary: those
with the same interval mass are summarised in one call, since the interval solver costs about as
much for thirty rows as for one, and a row's numbers do not depend on the rows beside it (see
service.engines.stats).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from service.engines import summarise_classification, summarise_regression
from service.errors import InvalidInputError

__all__ = ["require_finite", "summarise_requests"]

# Draws summarised at a time (passes x rows x outputs): the summaries work in float64 on copies
# of their draws, several at once, so a block keeps each near 2 MB. Summarised whole, 1,000 rows
# at T=2,000 (the default max_work) took 325 MB above the draws (10 classes), 260 MB (one
# regression output); in blocks, 0 and 58-82 MB, and the regression ran 2x faster.
_BLOCK_ELEMENTS = 262_144


def require_finite(finite_rows: npt.ArrayLike) -> None:
    """Refuse outputs that overflowed: a 200 carrying nulls for them would be silently wrong."""
    bad = np.flatnonzero(~np.asarray(finite_rows, dtype=bool))
    if bad.size:
        raise InvalidInputError(
            f"instances[{int(bad[0])}]: the model's output is not a finite number (its float32 "
            "arithmetic overflowed); the feature values are far outside the range the model was "
            "trained on, send values of a realistic magnitude"
        )


def summarise_requests(
    draws: torch.Tensor, sizes: list[int], levels: list[float], tau: torch.Tensor | None
) -> list[Any]:
    """(summary, the request's own draws) or an InvalidInputError, per request.

    Args:
        draws: CPU passes of all stacked rows, (T, sum(sizes), outputs).
        sizes: each request's row count, in stacking order.
        levels: each request's interval mass (ignored for classification).
        tau: observation noise precision per output for regression; None for classification.
    """
    finite = np.isfinite(draws.numpy()).all(axis=(0, 2))
    bounds = np.cumsum([0, *sizes]).tolist()
    results: list[Any] = [None] * len(sizes)
    groups: dict[float, list[int]] = {}
    for index, level in enumerate(levels):
        try:
            require_finite(finite[bounds[index] : bounds[index + 1]])
        except InvalidInputError as exc:
            results[index] = exc
            continue
        groups.setdefault(0.0 if tau is None else level, []).append(index)
    for level, members in groups.items():
        rows = torch.cat([torch.arange(bounds[i], bounds[i + 1]) for i in members])
        summary = _summarise_rows(draws, rows, tau, level)
        offset = 0
        for index in members:
            start, stop = bounds[index], bounds[index + 1]
            results[index] = (
                _row_slice(summary, offset, offset + stop - start),
                draws[:, start:stop],
            )
            offset += stop - start
    return results


def _summarise_rows(
    draws: torch.Tensor, rows: torch.Tensor, tau: torch.Tensor | None, level: float
) -> Any:
    """The summary of `rows` of `draws`, computed a block of rows at a time; a row's numbers
    do not depend on the rows summarised beside it, so the blocks join into the same answer.
    Each block's results are copied into tensors allocated once: kept per block, small
    long-lived results between freed temporaries grew glibc's heap by 200+ MB."""
    total = rows.numel()
    step = max(1, _BLOCK_ELEMENTS // (draws.shape[0] * draws.shape[2]))
    joined: dict[str, torch.Tensor] = {}
    for start in range(0, total, step):
        picked = draws.index_select(1, rows[start : start + step])
        part = (
            summarise_classification(picked)
            if tau is None
            else summarise_regression(picked, tau, level)
        )
        if step >= total:
            return part
        for field in fields(part):
            value = getattr(part, field.name)
            if field.name not in joined:
                joined[field.name] = value.new_empty((total, *value.shape[1:]))
            joined[field.name][start : start + value.shape[0]] = value
    return type(part)(**joined)


def _row_slice(summary: Any, start: int, stop: int) -> Any:
    """Rows start:stop of a regression or classification summary (every field is per row)."""
    return type(summary)(
        **{field.name: getattr(summary, field.name)[start:stop] for field in fields(summary)}
    )
