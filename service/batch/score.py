"""Score a CSV of new rows: `dropserve predict`, in process or against a running server.

The rows stream through in chunks (see `reader`), each chunk through a `Scorer`: the bundle's
ONNX engine and, with uncertainty, its MC engine (`LocalScorer`), or the same two calls to a
server (`service.batch.remote`), so memory is bounded by the chunk whatever the file's length. The
output is written beside its final name and renamed when complete, so a run that stops at a bad
cell leaves no half-scored file behind.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from service.batch.columns import ModelShape, column_names, scored_columns
from service.batch.reader import RowReader
from service.dataplane import LoadedModel
from service.dataplane.rules import DEFAULT_INTERVAL
from service.errors import DataError

__all__ = ["LocalScorer", "ScoreOptions", "ScoreReport", "Scorer", "score_csv"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreOptions:
    """What to score and how: the input and output files, and the MC options."""

    data: Path
    out: Path
    uncertainty: bool = False
    samples: int = 100
    seed: int = 0
    interval: float = DEFAULT_INTERVAL
    batch_rows: int = 1024
    delimiter: str = ","
    progress: bool = True

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")
        if self.batch_rows < 1:
            raise ValueError(f"batch rows must be at least 1, got {self.batch_rows}")
        if self.seed < 0:
            raise ValueError(f"the seed must be 0 or more, got {self.seed}")
        if not 0.0 < self.interval < 1.0:
            raise ValueError(f"the interval must be between 0 and 1, got {self.interval}")
        if len(self.delimiter) != 1:
            raise ValueError(f"the delimiter must be one character, got {self.delimiter!r}")


class Scorer(Protocol):
    """Scores chunks of rows for one model: its appended cells, in `column_names` order."""

    @property
    def shape(self) -> ModelShape: ...

    def score(
        self, features: npt.NDArray[np.float64], options: ScoreOptions, seed: int
    ) -> list[list[str]]: ...


class LocalScorer:
    """A loaded bundle's engines, run in this process."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.shape = ModelShape.of(model.manifest)

    def score(
        self, features: npt.NDArray[np.float64], options: ScoreOptions, seed: int
    ) -> list[list[str]]:
        deterministic = self.model.deterministic.predict(features)
        draws = (
            self.model.mc.sample(features, options.samples, seed) if options.uncertainty else None
        )
        return scored_columns(self.model.manifest, deterministic, draws, options.interval)


@dataclass(frozen=True)
class ScoreReport:
    rows: int
    columns: list[str]
    out: Path


def score_csv(options: ScoreOptions, model: LoadedModel | Scorer) -> ScoreReport:
    """Append prediction columns to every row of `options.data`, written to `options.out`.

    Chunk i draws its MC passes with seed + i, in process and on a server alike, so a run
    replays exactly with the same seed and chunk size, whichever way it is scored.

    Args:
        options: the files and the MC options.
        model: the loaded bundle (see `service.evaluation.run.load_model`), or a `Scorer`.

    Returns:
        The number of rows scored, the appended column names and the output path.

    Raises:
        DataError: a feature column is missing, a cell is not a number (naming its line and
            column), a row is ragged, an appended column's name is taken, or the output cannot
            be written.
    """
    scorer = LocalScorer(model) if isinstance(model, LoadedModel) else model
    shape = scorer.shape
    if options.out.resolve() == options.data.resolve():
        raise DataError(f"--out {options.out} is the input file; write the scores elsewhere")
    reader = RowReader(options.data, shape.features, options.delimiter)
    added = column_names(shape, options.uncertainty)
    taken = sorted(set(added) & set(reader.header))
    if taken:
        reader.close()
        raise DataError(
            f"{reader.label} already has a column named {taken[0]!r}, which scoring adds; "
            "rename or drop that column"
        )
    partial = options.out.with_name(f".{options.out.name}.partial")
    rows = 0
    try:
        with partial.open("w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file, delimiter=options.delimiter)
            writer.writerow([*reader.header, *added])
            with tqdm(
                desc="predict", unit="row", file=sys.stderr, disable=not options.progress
            ) as bar:
                for index, chunk in enumerate(reader.chunks(options.batch_rows)):
                    scored = scorer.score(chunk.features, options, options.seed + index)
                    writer.writerows(
                        cells + extra for cells, extra in zip(chunk.cells, scored, strict=True)
                    )
                    rows += len(chunk.cells)
                    bar.update(len(chunk.cells))
        if rows == 0:
            raise DataError(f"{reader.label}: the file has a header but no rows to score")
        os.replace(partial, options.out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DataError(f"cannot write {options.out} ({exc.strerror})") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        reader.close()
    logger.info("scored %d rows of %s into %s", rows, reader.label, options.out)
    return ScoreReport(rows=rows, columns=added, out=options.out)
