"""`dropserve import onnx | torch`: thin shells over service.importers.

Every refusal (a graph that is not an MLP chain, missing metadata, no parity) is bad input, so it
exits with status 2, like an argparse error, and names the node, key or flag to fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service.cli.common import (
    DEFAULT,
    TRAIN_DEFAULTS,
    SubParsers,
    configure_logging,
    list_of,
    names,
)
from service.cli.serving import served_at
from service.config import get_settings
from service.errors import DataError, ModelImportError

__all__ = ["add_import"]


def _metadata_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="the network file to import")
    parser.add_argument("--name", required=True, help="bundle name (lower-case, digits, . _ -)")
    parser.add_argument(
        "--models-dir", type=Path, default=TRAIN_DEFAULTS["models_dir"], metavar="DIR", help=DEFAULT
    )
    columns = parser.add_argument_group("columns")
    source = columns.add_mutually_exclusive_group()
    source.add_argument(
        "--features", type=names, metavar="COL[,COL...]", help="feature names, in input order"
    )
    source.add_argument(
        "--features-from",
        type=Path,
        metavar="CSV",
        help="take the feature names from a CSV header (less the target columns)",
    )
    columns.add_argument(
        "--target", type=names, metavar="COL[,COL...]", help="target column name(s)"
    )
    columns.add_argument(
        "--classes", type=names, metavar="LABEL[,LABEL...]", help="class labels in output order"
    )
    columns.add_argument(
        "--task",
        choices=["regression", "classification"],
        help="needed only when the file does not tell (no Softmax, several outputs)",
    )
    dropout = parser.add_argument_group("dropout")
    dropout.add_argument(
        "--dropout",
        type=list_of(float, "rates"),
        metavar="P[,P...]",
        help="hidden-layer rates, one per layer (or one for all), when the file has no Dropout",
    )
    dropout.add_argument("--input-dropout", type=float, metavar="P", help="input dropout rate")
    dropout.add_argument(
        "--dropout-style", choices=["inverted", "classic"], default="inverted", help=DEFAULT
    )
    noise = parser.add_argument_group("noise and calibration (regression needs one of the two)")
    tau = noise.add_mutually_exclusive_group()
    tau.add_argument(
        "--calibrate",
        type=Path,
        metavar="CSV",
        help="labelled rows (feature and --target columns) to fit tau and record calibration on",
    )
    tau.add_argument(
        "--tau", type=list_of(float, "precisions"), metavar="T[,T...]", help="tau per output"
    )
    noise.add_argument(
        "--tau-samples", type=int, default=1000, metavar="T", help="MC passes" + DEFAULT
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds parity rows and MC" + DEFAULT)
    parser.add_argument("--description", default="", help="one line for the model listing")
    parser.add_argument("--quiet", action="store_true", help="warnings only")


def add_import(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "import",
        help="turn a network trained elsewhere (ONNX, PyTorch) into a new bundle version",
        description="Read an MLP trained with dropout from an ONNX graph or a PyTorch state "
        "dict, check that the bundle reproduces it (1e-5 relative), and save it as the next "
        "version of MODELS_DIR/NAME. Nothing is written when any check fails.",
    )
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    onnx_parser = formats.add_parser(
        "onnx",
        help="an ONNX graph: Gemm or MatMul+Add layers, activations, Dropout",
        description="Import an ONNX graph that is a chain of affine layers with activations "
        "and dropout (torch.onnx.export in eval or train mode, tf2onnx).",
    )
    _metadata_flags(onnx_parser)
    onnx_parser.set_defaults(handler=_import)
    torch_parser = formats.add_parser(
        "torch",
        help="an nn.Sequential state dict (safetensors or torch.save)",
        description="Import the state dict of an nn.Sequential MLP; sizes come from the "
        "weights. torch.save files are loaded with weights_only=True, so no pickle runs.",
    )
    _metadata_flags(torch_parser)
    torch_parser.add_argument(
        "--activation",
        choices=["relu", "tanh", "gelu", "sigmoid"],
        required=True,
        help="the activation between the layers (a state dict does not record it)",
    )
    torch_parser.set_defaults(handler=_import)


def _import(args: argparse.Namespace) -> int:
    from service.importers import ImportOptions, import_onnx_file, import_torch_file

    configure_logging(args.quiet)
    try:
        options = ImportOptions(
            name=args.name,
            models_dir=args.models_dir,
            features=args.features,
            features_from=args.features_from,
            targets=args.target,
            classes=args.classes,
            task=args.task,
            dropout=args.dropout,
            input_dropout=args.input_dropout,
            style=args.dropout_style,
            calibrate=args.calibrate,
            tau=args.tau,
            mc_samples=args.tau_samples,
            seed=args.seed,
            description=args.description,
        )
        if args.format == "onnx":
            manifest = import_onnx_file(args.file, options)
        else:
            manifest = import_torch_file(args.file, args.activation, options)
    except (ValueError, ModelImportError, DataError) as exc:
        message = exc.message if isinstance(exc, ModelImportError | DataError) else str(exc)
        print(f"dropserve import {args.format}: error: {message}", file=sys.stderr)
        return 2
    print(options.models_dir / manifest.name / str(manifest.version))
    print(served_at(get_settings(), options.models_dir, manifest.name, manifest.version))
    if manifest.imported is not None:
        print(f"  parity error: {manifest.imported.parity_max_error:.3g}")
    for key, value in manifest.metrics.items():
        print(f"  {key}: {value:.6g}")
    if manifest.tau is not None:
        print(f"  tau: {', '.join(f'{tau:.6g}' for tau in manifest.tau)}")
    return 0
