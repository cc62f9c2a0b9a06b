"""Tiny synthetic CSV files for the training tests (seeded, a few hundred rows at most)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["classification_csv", "regression_csv", "write_csv"]


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def regression_csv(path: Path, rows: int = 200, noise: float = 0.1, seed: int = 0) -> Path:
    """Columns a, b, c and y = 2a - b + 0.5 c^2 + N(0, noise^2)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    y = 2.0 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] ** 2 + noise * rng.normal(size=rows)
    rows_out = [[*map(float, row), float(target)] for row, target in zip(x, y, strict=True)]
    return write_csv(path, ["a", "b", "c", "y"], rows_out)


def classification_csv(path: Path, rows: int = 240, seed: int = 0) -> Path:
    """Columns u, v and a label 'low', 'mid' or 'high' that sets the centre of u (well apart)."""
    rng = np.random.default_rng(seed)
    centres = {"low": -3.0, "mid": 0.0, "high": 3.0}
    names = list(centres)
    labels = [names[i % 3] for i in range(rows)]
    data = [
        [centres[label] + rng.normal(scale=0.5), rng.normal(scale=0.5), label] for label in labels
    ]
    return write_csv(path, ["u", "v", "label"], data)
