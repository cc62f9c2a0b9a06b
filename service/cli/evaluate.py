"""`dropserve evaluate`: a bundle's accuracy and calibration on a labelled CSV."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from service.cli.common import DEFAULT, SubParsers, configure_logging

__all__ = ["add_evaluate"]


def add_evaluate(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a bundle's predictions and uncertainty on a labelled CSV",
        description="Run a bundle's two engines, as the server does, over a CSV that has the "
        "model's feature and target columns, and report accuracy, likelihood and calibration: "
        "RMSE, log-likelihood, interval coverage and width (regression); accuracy, NLL, Brier "
        "score, ECE and how well entropy flags errors (classification).",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="e.g. models/concrete/1")
    parser.add_argument("--data", type=Path, required=True, metavar="FILE", help="labelled CSV")
    parser.add_argument(
        "--rows",
        choices=["all", "validation", "train"],
        default="all",
        help="validation/train: the rows of the training run's split (the file must be the one "
        "the model was trained on)" + DEFAULT,
    )
    parser.add_argument(
        "--samples", type=int, default=1000, metavar="T", help="MC passes" + DEFAULT
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the MC passes" + DEFAULT)
    parser.add_argument("--device", default=None, help="MC device: auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--batch-rows", type=int, default=256, metavar="N", help="rows per engine call" + DEFAULT
    )
    parser.add_argument("--format", choices=["table", "json"], default="table", help=DEFAULT)
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots into DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    parser.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    import importlib.util

    from service.config import get_settings
    from service.device import resolve_torch_device
    from service.evaluation.run import EvaluationOptions, evaluate_model, load_model

    configure_logging(args.quiet)
    if args.plots is not None and importlib.util.find_spec("matplotlib") is None:
        print(
            "dropserve evaluate: error: --plots needs matplotlib, which is not installed; "
            "install it with: pip install 'dropserve[plots]'",
            file=sys.stderr,
        )
        return 2
    try:
        options = EvaluationOptions(
            data=args.data,
            rows=args.rows,
            samples=args.samples,
            seed=args.seed,
            batch_rows=args.batch_rows,
            progress=not args.quiet,
        )
    except ValueError as exc:
        print(f"dropserve evaluate: error: {exc}", file=sys.stderr)
        return 2
    settings = get_settings(device=args.device)
    device = resolve_torch_device(settings.device)
    model = load_model(args.bundle, device, settings.mc_chunk_elements, settings.onnx_threads)
    report = evaluate_model(options, model)
    print(report.to_json() if args.format == "json" else report.to_table())
    if args.plots is not None:
        from service.evaluation.plots import write_plots

        for path in write_plots(report, args.plots):
            logging.getLogger(__name__).info("wrote %s", path)
    return 0
