"""Scoring against a running server (`dropserve predict --url`), through the Python client.

Each chunk is one `/predict` and, with uncertainty, one seeded `/uncertainty` request; the server
runs a seeded request alone, so its answers equal the in-process engines' for the same seed and
chunk, and the file written is the same. Only httpx is needed here: no engine is imported.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from service.batch.columns import CLASSIFICATION_STATS, REGRESSION_STATS, ModelShape, text_cells
from service.batch.score import ScoreOptions
from service.client import Client, UncertaintyResult

__all__ = ["RemoteScorer"]


class RemoteScorer:
    """One served model, scored through `client`.

    Args:
        client: the server's client.
        name: the served model.
        version: a pinned version; None takes the newest when scoring starts.

    Raises:
        ApiError: the server cannot be reached, or does not serve that model or version.
    """

    def __init__(self, client: Client, name: str, version: int | None = None) -> None:
        detail = client.model(name, version)
        self.client = client
        self.name = name
        # Pinned for the whole file: a new version picked up mid-run must not score half of it.
        self.version = detail.version
        self.shape = ModelShape(detail.task, detail.features, detail.outputs, detail.classes)

    def score(
        self, features: npt.NDArray[np.float64], options: ScoreOptions, seed: int
    ) -> list[list[str]]:
        predicted = self.client.predict(self.name, features, version=self.version)
        classification = self.shape.task == "classification"
        if classification:
            labels = predicted.labels or []
            rows = [
                [label, *cells]
                for label, cells in zip(labels, text_cells(predicted.values), strict=True)
            ]
        else:
            rows = text_cells(predicted.values)
        if not options.uncertainty:
            return rows
        answer = self.client.uncertainty(
            self.name,
            features,
            samples=options.samples,
            seed=seed,
            # The interval shapes regression answers only; a classifier has none to send.
            interval=None if classification else options.interval,
            version=self.version,
        )
        return [row + extra for row, extra in zip(rows, _uncertainty_cells(answer), strict=True)]


def _uncertainty_cells(answer: UncertaintyResult) -> list[list[str]]:
    """The `/uncertainty` rows as the cells `column_names` lists after the predictions."""
    if answer.task == "classification":
        cells: list[list[str]] = []
        for row in answer.classification:
            (numbers,) = text_cells([[getattr(row, stat) for stat in CLASSIFICATION_STATS[1:]]])
            cells.append([row.label, *numbers])
        return cells
    return text_cells(
        [
            # Output-major, as `column_names` lists them: every statistic of one output first.
            [getattr(row, stat)[k] for k in range(len(answer.outputs)) for stat in REGRESSION_STATS]
            for row in answer.regression
        ]
    )
