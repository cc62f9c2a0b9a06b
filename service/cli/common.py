"""What the subcommands share: argparse types, defaults and logging set-up."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

from service.training.options import TrainOptions

__all__ = [
    "DEFAULT",
    "TRAIN_DEFAULTS",
    "Handler",
    "SubParsers",
    "configure_logging",
    "joined",
    "list_of",
    "names",
]

# argparse has no public name for the object `add_subparsers` returns.
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]
_T = TypeVar("_T")
DEFAULT = " (default: %(default)s)"
# The flags default to TrainOptions' own defaults, so the two cannot drift apart.
TRAIN_DEFAULTS: dict[str, Any] = {
    field.name: field.default for field in dataclasses.fields(TrainOptions)
}


def joined(option: str) -> str:
    return ",".join(str(value) for value in TRAIN_DEFAULTS[option])


def list_of(kind: Callable[[str], _T], what: str) -> Callable[[str], tuple[_T, ...]]:
    """An argparse type for comma-separated values, e.g. `--hidden 64,64`."""

    def parse(text: str) -> tuple[_T, ...]:
        try:
            values = tuple(kind(part.strip()) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what}, got {text!r}"
            ) from None
        return values

    return parse


def names(text: str) -> tuple[str, ...]:
    """An argparse type for comma-separated column names."""
    columns = tuple(part.strip() for part in text.split(","))
    if not all(columns):
        raise argparse.ArgumentTypeError(f"expected comma-separated column names, got {text!r}")
    return columns


def configure_logging(quiet: bool) -> None:
    # Each handler sets up logging itself, so that `serve` can use its own settings.
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
