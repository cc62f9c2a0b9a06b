"""The `dropserve` command: thin typed shells over importable functions.

Each subcommand lives in its own module with a registrar, `add_<name>(subparsers)`, that defines
its flags and sets `handler` to a function `(argparse.Namespace) -> int`. To add a subcommand,
write its module and list its registrar in `REGISTRARS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from service import __version__
from service.cli.common import Handler, SubParsers
from service.cli.evaluate import add_evaluate
from service.cli.import_ import add_import
from service.cli.predict import add_predict
from service.cli.serve import add_serve
from service.cli.sign import add_sign
from service.cli.train import add_export, add_train
from service.errors import DropserveError

__all__ = ["REGISTRARS", "build_parser", "main"]

# Subcommand registrars, in help order.
REGISTRARS: list[Callable[[SubParsers], None]] = [
    add_serve,
    add_train,
    add_export,
    add_evaluate,
    add_predict,
    add_import,
    add_sign,
]


def build_parser() -> argparse.ArgumentParser:
    """The `dropserve` argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="dropserve", description="Serve and train dropout-trained MLPs."
    )
    parser.add_argument("--version", action="version", version=f"dropserve {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRARS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `dropserve`; returns the process exit status."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except DropserveError as exc:
        print(f"dropserve {args.command}: error: {exc.message}", file=sys.stderr)
        return 1
