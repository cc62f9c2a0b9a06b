"""`dropserve serve`: the HTTP server, alone or as Ray Serve replicas."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from service.cli.common import DEFAULT, SubParsers

if TYPE_CHECKING:
    from service.config import Settings

__all__ = ["add_serve"]


def add_serve(subparsers: SubParsers) -> None:
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
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="server processes sharing the port, supervised; 0: one per core "
        "(1; DROPSERVE_PROCESSES)",
    )
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

    try:
        settings = get_settings(
            host=args.host,
            port=args.port,
            processes=args.processes,
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
        if settings.processes > 1:  # 0 (one per core) is what replicas do anyway
            print(
                "dropserve serve: error: --ray runs one process per replica; use --replicas "
                "instead of --processes/DROPSERVE_PROCESSES",
                file=sys.stderr,
            )
            return 2
        return _serve_on_ray(args, settings.model_copy(update={"processes": 1}))
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
    from service.cli.port_check import busy_port_message, port_in_use

    # Checked before logging, models and processes start, so the refusal is the only output.
    if port_in_use(settings.host, settings.port):
        print(
            f"dropserve serve: error: {busy_port_message(settings.host, settings.port)}",
            file=sys.stderr,
        )
        return 2
    from service.hosting.sizing import plan_processes
    from service.observability import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    plan = plan_processes(settings, cuda=_mc_on_cuda(settings))
    logging.getLogger("service.hosting").info("%d server process(es): %s", plan.count, plan.reason)
    if plan.count > 1:
        _exec_supervisor(args, plan.count)
    from service.hosting.server import serve

    serve(settings.model_copy(update={"processes": 1}))
    return 0


def _exec_supervisor(args: argparse.Namespace, processes: int) -> NoReturn:
    """Become `python -m service.hosting` (same PID, same signals), with the flags as
    DROPSERVE_* variables: the supervisor need not hold what this process has imported."""
    flags = {
        "HOST": args.host,
        "PORT": args.port,
        "MODELS_DIR": args.models_dir,
        "DEVICE": args.device,
        "LOG_LEVEL": args.log_level,
    }
    env = {**os.environ, **{f"DROPSERVE_{k}": str(v) for k, v in flags.items() if v is not None}}
    env["DROPSERVE_PROCESSES"] = str(processes)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "service.hosting"], env)


def _mc_on_cuda(settings: Settings) -> bool:
    """Whether MC dropout would run on CUDA (only asked when the process count is to be
    chosen, and torch only asked where an NVIDIA device node exists: Linux's, or WSL's)."""
    gpu_nodes = ("/dev/nvidiactl", "/dev/dxg")
    if settings.processes or settings.device == "cpu" or not any(map(os.path.exists, gpu_nodes)):
        return False
    import torch

    return bool(torch.cuda.is_available())


def _serve_on_ray(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from service.hosting import ray_serve
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
