"""Stream the rows of a CSV to score, in chunks, each cell checked as training checks it.

Only one chunk is held at a time, so a file of any length scores in bounded memory. Every
column is kept as written, to be copied to the output; the model's features are parsed.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from service.errors import DataError
from service.training.data import other_delimiter, read_number

__all__ = ["Chunk", "RowReader"]


@dataclass(frozen=True)
class Chunk:
    """Consecutive data rows: their cells as written, and the features (rows, features)."""

    cells: list[list[str]]
    features: npt.NDArray[np.float64]


class RowReader:
    """A CSV with a header, read for a model with the given feature columns.

    Args:
        path: the CSV file (UTF-8, with or without a byte-order mark).
        features: the model's feature names, in the model's order.
        delimiter: the field separator.

    Raises:
        DataError: the file cannot be read, is empty, or lacks a feature column (with a hint
            when the header seems to use another delimiter).
    """

    def __init__(self, path: Path, features: Sequence[str], delimiter: str = ",") -> None:
        self.label = path.name
        try:
            self._file: TextIO = path.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise DataError(f"{path}: cannot read the data file ({exc.strerror})") from exc
        self._reader = csv.reader(self._file, delimiter=delimiter)
        header = self._next()
        if header is None:
            self.close()
            raise DataError(f"{self.label}: the file is empty; it needs a header row and rows")
        self.header = [name.strip() for name in header]
        try:
            self._columns = self._feature_columns(features, delimiter)
        except DataError:
            self.close()
            raise

    def _feature_columns(self, features: Sequence[str], delimiter: str) -> list[int]:
        where = f"{self.label} line {self._reader.line_num}"
        missing = [name for name in features if name not in self.header]
        if not missing:
            return [self.header.index(name) for name in features]
        other = other_delimiter(self.header, delimiter)
        if other is not None:
            shown = "\\t" if other == "\t" else other
            raise DataError(
                f"{where}: the header does not split on {delimiter!r} but has {other!r} in "
                f"it; the file seems separated by {other!r}: pass --delimiter '{shown}'"
            )
        raise DataError(
            f"{where}: no column named {missing[0]!r}, a feature the model needs; the model "
            f"reads {', '.join(features)} and the header has {', '.join(self.header)}"
        )

    def _next(self) -> list[str] | None:
        """The next non-blank record, or None at the end."""
        try:
            for cells in self._reader:
                if cells and any(cell.strip() for cell in cells):
                    return cells
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(
                f"{self.label} line {self._reader.line_num}: not readable as UTF-8 CSV ({exc})"
            ) from exc
        return None

    def chunks(self, rows: int) -> Iterator[Chunk]:
        """Chunks of at most `rows` data rows, each cell of a feature checked to be a number.

        Raises:
            DataError: a row has another number of cells than the header, or a feature cell is
                missing or not a finite number; the message names the line and the column.
        """
        names = [self.header[i] for i in self._columns]
        while True:
            cells: list[list[str]] = []
            values: list[list[float]] = []
            while len(cells) < rows and (record := self._next()) is not None:
                line = self._reader.line_num
                if len(record) != len(self.header):
                    raise DataError(
                        f"{self.label} line {line}: expected {len(self.header)} cells like the "
                        f"header, got {len(record)}"
                    )
                values.append(
                    [
                        read_number(record[i], line, name, self.label)
                        for i, name in zip(self._columns, names, strict=True)
                    ]
                )
                cells.append(record)
            if not cells:
                return
            yield Chunk(cells, np.asarray(values, dtype=np.float64))

    def close(self) -> None:
        self._file.close()
