"""`dropserve train` and `dropserve export`: thin shells over service.training."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service.cli.common import (
    DEFAULT,
    TRAIN_DEFAULTS,
    SubParsers,
    configure_logging,
    joined,
    list_of,
    names,
)
from service.cli.serving import served_at
from service.config import get_settings
from service.training.options import TrainOptions
from service.training.pipeline import train_bundle
from service.training.reexport import reexport_bundle

__all__ = ["add_export", "add_train"]


def add_train(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a dropout MLP on a CSV file and save it as a new bundle version",
        description="Train a dropout MLP on a CSV file (header row) and save it as the next "
        "version of MODELS_DIR/NAME. The data are checked cell by cell before training starts.",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data", type=Path, required=True, metavar="FILE", help="CSV with a header")
    data.add_argument(
        "--target", type=names, required=True, metavar="COL[,COL...]", help="target column(s)"
    )
    data.add_argument(
        "--features",
        type=names,
        metavar="COL[,COL...]",
        help="feature columns (default: every column that is not a target)",
    )
    data.add_argument(
        "--task",
        choices=["regression", "classification"],
        default=TRAIN_DEFAULTS["task"],
        help=DEFAULT,
    )
    data.add_argument(
        "--validation-fraction",
        type=float,
        default=TRAIN_DEFAULTS["validation_fraction"],
        metavar="F",
        help="rows held out (seeded shuffle) for early stopping, tau and the metrics" + DEFAULT,
    )

    model = parser.add_argument_group("network")
    model.add_argument(
        "--hidden",
        type=list_of(int, "widths"),
        default=TRAIN_DEFAULTS["hidden"],
        metavar="W[,W...]",
        help=f"hidden layer widths (default: {joined('hidden')})",
    )
    model.add_argument(
        "--dropout",
        type=list_of(float, "rates"),
        default=TRAIN_DEFAULTS["dropout"],
        metavar="P[,P...]",
        help="hidden-layer dropout: one rate for all layers, or one per layer "
        f"(default: {joined('dropout')})",
    )
    model.add_argument(
        "--input-dropout",
        type=float,
        default=TRAIN_DEFAULTS["input_dropout"],
        metavar="P",
        help=DEFAULT,
    )
    model.add_argument(
        "--dropout-style",
        choices=["inverted", "classic"],
        default=TRAIN_DEFAULTS["style"],
        help=DEFAULT,
    )
    model.add_argument(
        "--activation",
        choices=["relu", "tanh", "gelu", "sigmoid"],
        default=TRAIN_DEFAULTS["activation"],
        help=DEFAULT,
    )

    fit = parser.add_argument_group("optimisation")
    fit.add_argument(
        "--epochs",
        type=int,
        default=TRAIN_DEFAULTS["epochs"],
        metavar="N",
        help="most epochs" + DEFAULT,
    )
    fit.add_argument(
        "--patience",
        type=int,
        default=TRAIN_DEFAULTS["patience"],
        metavar="N",
        help="stop after N epochs without a better validation loss and keep the best weights; "
        "0 trains exactly --epochs" + DEFAULT,
    )
    fit.add_argument(
        "--batch-size", type=int, default=TRAIN_DEFAULTS["batch_size"], metavar="N", help=DEFAULT
    )
    fit.add_argument(
        "--lr",
        type=float,
        default=TRAIN_DEFAULTS["learning_rate"],
        help="Adam learning rate" + DEFAULT,
    )
    decay = fit.add_mutually_exclusive_group()
    decay.add_argument(
        "--weight-decay",
        type=float,
        default=TRAIN_DEFAULTS["weight_decay"],
        metavar="LAMBDA",
        help="adds LAMBDA * ||W||^2 to the loss for every layer's weights (not biases)" + DEFAULT,
    )
    decay.add_argument(
        "--prior-length-scale",
        type=float,
        metavar="L",
        help="with --prior-tau: LAMBDA_k = L^2 (1 - p_k) / (2 N TAU) per layer (MC dropout)",
    )
    fit.add_argument("--prior-tau", type=float, metavar="TAU", help="see --prior-length-scale")
    fit.add_argument(
        "--tau-samples",
        "--mc-samples",
        dest="mc_samples",
        type=int,
        default=TRAIN_DEFAULTS["mc_samples"],
        metavar="T",
        help="MC passes to fit tau and compute the MC validation metrics" + DEFAULT,
    )
    fit.add_argument(
        "--seed",
        type=int,
        default=TRAIN_DEFAULTS["seed"],
        help="seeds the split, weights and masks" + DEFAULT,
    )

    out = parser.add_argument_group("output")
    out.add_argument("--name", required=True, help="bundle name (lower-case, digits, . _ -)")
    out.add_argument(
        "--models-dir", type=Path, default=TRAIN_DEFAULTS["models_dir"], metavar="DIR", help=DEFAULT
    )
    out.add_argument("--description", default="", help="one line for the model listing")
    out.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    configure_logging(args.quiet)
    try:
        options = TrainOptions(
            data=args.data,
            targets=args.target,
            name=args.name,
            task=args.task,
            features=args.features,
            hidden=args.hidden,
            dropout=args.dropout,
            input_dropout=args.input_dropout,
            style=args.dropout_style,
            activation=args.activation,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            weight_decay=args.weight_decay,
            prior_length_scale=args.prior_length_scale,
            prior_tau=args.prior_tau,
            validation_fraction=args.validation_fraction,
            patience=args.patience,
            mc_samples=args.mc_samples,
            seed=args.seed,
            models_dir=args.models_dir,
            description=args.description,
            progress=not args.quiet,
        )
    except ValueError as exc:
        print(f"dropserve train: error: {exc}", file=sys.stderr)
        return 2
    manifest = train_bundle(options)
    print(options.models_dir / manifest.name / str(manifest.version))
    print(served_at(get_settings(), options.models_dir, manifest.name, manifest.version))
    for key, value in manifest.metrics.items():
        print(f"  {key}: {value:.6g}")
    if manifest.tau is not None:
        print(f"  tau: {', '.join(f'{tau:.6g}' for tau in manifest.tau)}")
    return 0


def add_export(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="re-export a bundle's ONNX graph from its weights, as a new version",
        description="Load and verify a bundle, export its weights to ONNX again, check parity "
        "with PyTorch and save the result as the next version of the same model (versions are "
        "never changed in place).",
    )
    parser.add_argument(
        "--bundle", type=Path, required=True, help="bundle folder, e.g. models/concrete/1"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the parity-check rows" + DEFAULT)
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    configure_logging(quiet=False)
    manifest = reexport_bundle(args.bundle, seed=args.seed)
    print(args.bundle.parent / str(manifest.version))
    print(f"  onnx parity error: {manifest.onnx.parity_max_error:.3g}")
    return 0
