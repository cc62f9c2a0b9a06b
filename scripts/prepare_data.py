"""Rebuild the shipped training CSVs under data/ from their upstream files.

Usage:
    python scripts/prepare_data.py concrete PATH/TO/concrete/data.txt
    python scripts/prepare_data.py digits PATH/TO/sklearn/datasets/data/digits.csv.gz

Cells are copied as text, not re-formatted through floats, so the CSVs hold exactly the upstream
numbers. See data/README.md for where the upstream files come from.
"""

from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

CONCRETE_HEADER = [
    "cement",
    "slag",
    "fly_ash",
    "water",
    "superplasticizer",
    "coarse_aggregate",
    "fine_aggregate",
    "age",
    "strength",
]
DIGITS_HEADER = [f"pixel_{row}_{col}" for row in range(8) for col in range(8)] + ["digit"]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {path} ({len(rows)} rows)")


def concrete(source: Path) -> None:
    # data.txt is whitespace separated and ends with a blank line.
    rows = [line.split() for line in source.read_text().splitlines() if line.strip()]
    if any(len(row) != len(CONCRETE_HEADER) for row in rows):
        raise SystemExit(f"{source}: expected {len(CONCRETE_HEADER)} columns on every line")
    _write(DATA_DIR / "concrete.csv", CONCRETE_HEADER, rows)


def digits(source: Path) -> None:
    with gzip.open(source, "rt") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if any(len(row) != len(DIGITS_HEADER) for row in rows):
        raise SystemExit(f"{source}: expected {len(DIGITS_HEADER)} columns on every line")
    _write(DATA_DIR / "digits.csv", DIGITS_HEADER, rows)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in {"concrete", "digits"}:
        raise SystemExit(__doc__)
    {"concrete": concrete, "digits": digits}[sys.argv[1]](Path(sys.argv[2]))
