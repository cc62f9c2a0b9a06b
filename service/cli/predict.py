"""`dropserve predict`: score a CSV of new rows with a bundle in process (`--bundle`), or with
a running server's model (`--url`, `--model`), writing the same columns either way."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from service.cli.common import DEFAULT, SubParsers, configure_logging
from service.dataplane.rules import DEFAULT_INTERVAL
from service.errors import DataError

if TYPE_CHECKING:
    from service.batch import ScoreOptions, Scorer
    from service.client import Client
    from service.dataplane import LoadedModel

__all__ = ["add_predict"]

API_KEY_ENV = "DROPSERVE_API_KEY"


def add_predict(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="score a CSV of new rows with a bundle or a server, with or without uncertainty",
        description="Run a bundle's engines, as the server does, over every row of a CSV and "
        "write the rows with prediction columns appended: the ONNX prediction (regression) or "
        "label and class probabilities (classification); with --uncertainty also the MC-dropout "
        "mean, std, interval and variances, or entropies and mutual information. Every column "
        "of the input is kept (a target column too, ignored); rows stream through in chunks, so "
        "any file size scores in bounded memory. With --url and --model the rows are sent to "
        "a running server instead, chunk by chunk, and the output is the same.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", type=Path, help="score in process, e.g. models/concrete/1")
    source.add_argument(
        "--url", help="score with a running server instead, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument("--model", help="the served model to score with (with --url)")
    parser.add_argument(
        "--version", type=int, default=None, help="a served version (with --url; the newest)"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"the server's API key (with --url; default: ${API_KEY_ENV})",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per request (with --url)" + DEFAULT
    )
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


def _fail(message: str, status: int = 2) -> int:
    print(f"dropserve predict: error: {message}", file=sys.stderr)
    return status


def open_client(args: argparse.Namespace) -> Client:
    """The client for `--url`; a seam that tests replace with one over an in-process app."""
    from service.client import Client

    return Client(args.url, api_key=args.api_key, timeout=args.timeout)


def _usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of flags, which argparse cannot say by itself."""
    if args.url is None:
        for flag, value in (("--model", args.model), ("--version", args.version)):
            if value is not None:
                return (
                    f"{flag} {value} names a served model and needs --url; with --bundle leave "
                    "it out"
                )
        return None
    if args.model is None:
        return f"--url {args.url} needs --model NAME, the served model to score with"
    if args.device is not None:
        return (
            f"--device {args.device} applies to scoring in process (--bundle); the server at "
            f"{args.url} runs on its own device (DROPSERVE_DEVICE)"
        )
    return None


def _predict(args: argparse.Namespace) -> int:
    from service.batch import ScoreOptions
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
    if (problem := _usage_error(args)) is not None:
        return _fail(problem)
    if args.url is not None:
        return _predict_remote(args, options)
    settings = get_settings(device=args.device)
    device = resolve_torch_device(settings.device)
    model = load_model(args.bundle, device, settings.mc_chunk_elements, settings.onnx_threads)
    return _score(options, model)


def _predict_remote(args: argparse.Namespace, options: ScoreOptions) -> int:
    from service.batch import RemoteScorer
    from service.client import ApiError

    with open_client(args) as client:
        try:
            return _score(options, RemoteScorer(client, args.model, args.version))
        except ApiError as exc:
            # The request was wrong (unknown model, a bad option, a missing key): a usage error,
            # exit 2; no answer or a server failure: exit 1, as other runtime errors.
            if exc.status is None:
                return _fail(str(exc), 1)
            usage = 400 <= exc.status < 500
            return _fail(f"the server at {args.url} refused: {exc}", 2 if usage else 1)


def _score(options: ScoreOptions, scorer: LoadedModel | Scorer) -> int:
    from service.batch import score_csv

    try:
        report = score_csv(options, scorer)
    except DataError as exc:  # a usage error, as argparse's: exit 2
        return _fail(exc.message)
    print(f"scored {report.rows} rows into {report.out}: added {', '.join(report.columns)}")
    return 0
