"""Row batches for a long evaluation, with a progress bar over rows."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from tqdm import tqdm

__all__ = ["row_batches"]


def row_batches(rows: int, size: int, *, progress: bool, label: str) -> Iterator[tuple[int, slice]]:
    """(batch index, slice of rows) for consecutive batches of at most `size` rows.

    A tqdm bar on stderr counts rows when `progress` is set; the MC passes of one batch are the
    unit of work, so the bar moves once per batch.
    """
    with tqdm(total=rows, desc=label, unit="row", file=sys.stderr, disable=not progress) as bar:
        for index, start in enumerate(range(0, rows, size)):
            stop = min(rows, start + size)
            yield index, slice(start, stop)
            bar.update(stop - start)
