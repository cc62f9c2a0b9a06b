"""The contract every performance suite keeps, and the options `python -m bench` runs it with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bench.harness.report import save_results

__all__ = ["Options", "Suite", "finish"]


@dataclass(frozen=True)
class Options:
    """How to run a suite: `quick` for the short smoke run, `save` to merge its results into
    bench/results/<date>-<machine>.json."""

    quick: bool = False
    save: bool = True


class Suite(Protocol):
    """A performance suite: it prints its tables and `RATIO <name> <value>` lines, saves its
    results unless told not to, and returns an exit status."""

    @property
    def name(self) -> str:
        """The name `python -m bench` selects it by, and its key in the results file."""
        ...

    def run(self, options: Options) -> int:
        """Measure, print and (with `options.save`) save; 0 on success."""
        ...


def finish(name: str, results: dict[str, Any] | None, options: Options) -> int:
    """Save a suite's `results` under `name` when asked to (None: nothing was measured)."""
    if results is not None and options.save:
        print(f"results: {save_results(name, results)}")
    return 0
