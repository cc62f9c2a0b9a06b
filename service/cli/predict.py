"""`dropserve predict`: score a CSV of new rows with a bundle, in process, no server needed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service.cli.common import DEFAULT, SubParsers, configure_logging
from service.dataplane.rules import DEFAULT_INTERVAL
from service.errors import DataError

__all__ = ["add_predict"]


def add_predict(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="score a CSV of new rows with a bundle, with or without uncertainty",
        description="Run a bundle's engines, as the server does, over every row of a CSV and "
        "write the rows with prediction columns appended: the ONNX prediction (regression) or "
        "label and class probabilities (classification); with --uncertainty also the MC-dropout "
        "mean, std, interval and variances, or entropies and mutual information. Every column "
        "of the input is kept (a target column too, ignored); rows stream through in chunks, so "
        "any file size scores in bounded memory.",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="e.g. models/concrete/1")
    parser.add_argument("--data", type=Path, required=True, metavar="FILE", help="CSV to score")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="scored CSV")
    parser.add_argument(
        "--uncertainty", action="store_true", help="add Monte-Carlo dropout columns"
    )
    parser.add_argument("--samples", type=int, default=100, metavar="T", help="MC passes" + DEFAULT)
    parser.add_argument("--seed", type=int, default=0, help="seeds the MC passes" + DEFAULT)
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        metavar="L",
        help="central interval mass (regression)" + DEFAULT,
    )
    parser.add_argument("--delimiter", default=",", help="field separator of both CSVs" + DEFAULT)
    parser.add_argument(
        "--batch-rows", type=int, default=1024, metavar="N", help="rows per chunk" + DEFAULT
    )
    parser.add_argument("--device", default=None, help="MC device: auto, cpu, cuda or cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    parser.set_defaults(handler=_predict)


def _fail(message: str) -> int:
    print(f"dropserve predict: error: {message}", file=sys.stderr)
    return 2


def _predict(args: argparse.Namespace) -> int:
    from service.batch import ScoreOptions, score_csv
    from service.config import get_settings
    from service.device import resolve_torch_device
    from service.evaluation.run import load_model

    configure_logging(args.quiet)
    try:
        options = ScoreOptions(
            data=args.data,
            out=args.out,
            uncertainty=args.uncertainty,
            samples=args.samples,
            seed=args.seed,
            interval=args.interval,
            batch_rows=args.batch_rows,
            delimiter=args.delimiter.replace("\\t", "\t"),
            progress=not args.quiet,
        )
    except ValueError as exc:
        return _fail(str(exc))
    settings = get_settings(device=args.device)
    device = resolve_torch_device(settings.device)
    model = load_model(args.bundle, device, settings.mc_chunk_elements, settings.onnx_threads)
    try:
        report = score_csv(options, model)
    except DataError as exc:  # a usage error, as argparse's: exit 2
        return _fail(exc.message)
    print(f"scored {report.rows} rows into {report.out}: added {', '.join(report.columns)}")
    return 0
