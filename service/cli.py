"""The `dropserve` command: thin typed shells over importable functions.

Each subcommand is added by a registrar, `_add_<name>(subparsers)`, that defines its flags and
sets `handler` to a function `(argparse.Namespace) -> int`. To add a subcommand, write its
registrar and list it in `REGISTRARS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from service import __version__
from service.errors import DropserveError
from service.training import TrainOptions, reexport_bundle, train_bundle

if TYPE_CHECKING:
    from service.config import Settings

__all__ = ["REGISTRARS", "build_parser", "main"]

# argparse has no public name for the object `add_subparsers` returns.
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]
_T = TypeVar("_T")
DEFAULT = " (default: %(default)s)"
# The flags default to TrainOptions' own defaults, so the two cannot drift apart.
_DEFAULTS: dict[str, Any] = {
    field.name: field.default for field in dataclasses.fields(TrainOptions)
}


def _joined(option: str) -> str:
    return ",".join(str(value) for value in _DEFAULTS[option])


def _list_of(kind: Callable[[str], _T], what: str) -> Callable[[str], tuple[_T, ...]]:
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


def _names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated column names, got {text!r}")
    return names


def _configure_logging(quiet: bool) -> None:
    # Each handler sets up logging itself, so that `serve` can use its own settings.
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _add_train(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a dropout MLP on a CSV file and save it as a new bundle version",
        description="Train a dropout MLP on a CSV file (header row) and save it as the next "
        "version of MODELS_DIR/NAME. The data are checked cell by cell before training starts.",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data", type=Path, required=True, metavar="FILE", help="CSV with a header")
    data.add_argument(
        "--target", type=_names, required=True, metavar="COL[,COL...]", help="target column(s)"
    )
    data.add_argument(
        "--features",
        type=_names,
        metavar="COL[,COL...]",
        help="feature columns (default: every column that is not a target)",
    )
    data.add_argument(
        "--task", choices=["regression", "classification"], default=_DEFAULTS["task"], help=DEFAULT
    )
    data.add_argument(
        "--validation-fraction",
        type=float,
        default=_DEFAULTS["validation_fraction"],
        metavar="F",
        help="rows held out (seeded shuffle) for early stopping, tau and the metrics" + DEFAULT,
    )

    model = parser.add_argument_group("network")
    model.add_argument(
        "--hidden",
        type=_list_of(int, "widths"),
        default=_DEFAULTS["hidden"],
        metavar="W[,W...]",
        help=f"hidden layer widths (default: {_joined('hidden')})",
    )
    model.add_argument(
        "--dropout",
        type=_list_of(float, "rates"),
        default=_DEFAULTS["dropout"],
        metavar="P[,P...]",
        help="hidden-layer dropout: one rate for all layers, or one per layer "
        f"(default: {_joined('dropout')})",
    )
    model.add_argument(
        "--input-dropout", type=float, default=_DEFAULTS["input_dropout"], metavar="P", help=DEFAULT
    )
    model.add_argument(
        "--dropout-style", choices=["inverted", "classic"], default=_DEFAULTS["style"], help=DEFAULT
    )
    model.add_argument(
        "--activation",
        choices=["relu", "tanh", "gelu", "sigmoid"],
        default=_DEFAULTS["activation"],
        help=DEFAULT,
    )

    fit = parser.add_argument_group("optimisation")
    fit.add_argument(
        "--epochs", type=int, default=_DEFAULTS["epochs"], metavar="N", help="most epochs" + DEFAULT
    )
    fit.add_argument(
        "--patience",
        type=int,
        default=_DEFAULTS["patience"],
        metavar="N",
        help="stop after N epochs without a better validation loss and keep the best weights; "
        "0 trains exactly --epochs" + DEFAULT,
    )
    fit.add_argument(
        "--batch-size", type=int, default=_DEFAULTS["batch_size"], metavar="N", help=DEFAULT
    )
    fit.add_argument(
        "--lr", type=float, default=_DEFAULTS["learning_rate"], help="Adam learning rate" + DEFAULT
    )
    decay = fit.add_mutually_exclusive_group()
    decay.add_argument(
        "--weight-decay",
        type=float,
        default=_DEFAULTS["weight_decay"],
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
        default=_DEFAULTS["mc_samples"],
        metavar="T",
        help="MC passes to fit tau and compute the MC validation metrics" + DEFAULT,
    )
    fit.add_argument(
        "--seed",
        type=int,
        default=_DEFAULTS["seed"],
        help="seeds the split, weights and masks" + DEFAULT,
    )

    out = parser.add_argument_group("output")
    out.add_argument("--name", required=True, help="bundle name (lower-case, digits, . _ -)")
    out.add_argument(
        "--models-dir", type=Path, default=_DEFAULTS["models_dir"], metavar="DIR", help=DEFAULT
    )
    out.add_argument("--description", default="", help="one line for the model listing")
    out.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    _configure_logging(args.quiet)
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
    for key, value in manifest.metrics.items():
        print(f"  {key}: {value:.6g}")
    if manifest.tau is not None:
        print(f"  tau: {', '.join(f'{tau:.6g}' for tau in manifest.tau)}")
    return 0


def _add_export(subparsers: SubParsers) -> None:
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
    _configure_logging(quiet=False)
    manifest = reexport_bundle(args.bundle, seed=args.seed)
    print(args.bundle.parent / str(manifest.version))
    print(f"  onnx parity error: {manifest.onnx.parity_max_error:.3g}")
    return 0


def _add_serve(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve every bundle under the models folder over HTTP",
        description="Serve the newest version of every bundle under --models-dir (older versions "
        "stay addressable). Flags override the DROPSERVE_* environment variables; an unset flag "
        "leaves the environment's value (or the default) in force.",
    )
    # Defaults are None so that an unset flag never overrides DROPSERVE_* from the environment.
    parser.add_argument("--host", default=None, help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (8000)")
    parser.add_argument("--models-dir", type=Path, default=None, help="bundle folder (models)")
    parser.add_argument(
        "--device", default=None, help="MC-dropout device: auto, cpu, cuda or cuda:N (auto)"
    )
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default=None, help="(info)"
    )
    ray = parser.add_argument_group(
        "Ray Serve", "scale out over a Ray cluster (needs the `ray` extra: dropserve[ray])"
    )
    ray.add_argument(
        "--ray",
        action="store_true",
        help="serve through Ray Serve's HTTP proxy on --host/--port, one process per replica",
    )
    ray.add_argument("--replicas", type=int, default=1, help="Serve replicas" + DEFAULT)
    ray.add_argument(
        "--replica-cpus", type=float, default=1.0, help="CPUs reserved per replica" + DEFAULT
    )
    ray.add_argument(
        "--replica-gpus",
        type=float,
        default=0.0,
        help="GPUs reserved per replica (0.5: two share one); MC dropout runs on it" + DEFAULT,
    )
    ray.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster to join (`local` starts a new one; default: RAY_ADDRESS, a running "
        "local cluster, or a new one)",
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from service.config import get_settings
    from service.server import serve

    try:
        settings = get_settings(
            host=args.host,
            port=args.port,
            models_dir=args.models_dir,
            device=args.device,
            log_level=args.log_level,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        print(f"dropserve serve: error: invalid settings: {problems}", file=sys.stderr)
        return 2
    if args.ray:
        return _serve_on_ray(args, settings)
    ray_only = {
        "--replicas": 1,
        "--replica-cpus": 1.0,
        "--replica-gpus": 0.0,
        "--ray-address": None,
    }
    misplaced = [
        f for f, unset in ray_only.items() if getattr(args, f[2:].replace("-", "_")) != unset
    ]
    if misplaced:
        print(
            f"dropserve serve: error: {', '.join(misplaced)} only work with --ray", file=sys.stderr
        )
        return 2
    serve(settings)
    return 0


def _serve_on_ray(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from service import ray_serve
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "ray":
            raise
        print(
            "dropserve serve: error: --ray needs Ray Serve, which is not installed; install "
            "dropserve[ray], e.g. pip install -c constraints.txt 'dropserve[ray]'",
            file=sys.stderr,
        )
        return 2
    # The replicas read DROPSERVE_* from their own environment; the flags given here win.
    overrides = {"device": args.device, "log_level": args.log_level}
    ray_serve.run(
        settings,
        {key: value for key, value in overrides.items() if value is not None},
        replicas=args.replicas,
        replica_cpus=args.replica_cpus,
        replica_gpus=args.replica_gpus,
        address=args.ray_address,
    )
    return 0


def _add_evaluate(subparsers: SubParsers) -> None:
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

    _configure_logging(args.quiet)
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


# Subcommand registrars, in help order.
REGISTRARS: list[Callable[[SubParsers], None]] = [
    _add_serve,
    _add_train,
    _add_export,
    _add_evaluate,
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
