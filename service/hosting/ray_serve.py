"""Ray Serve: dropserve's FastAPI app, unchanged, as a Serve deployment on a Ray cluster.

Each replica is one process with its own copy of the models: it builds `create_app(settings)`
when Ray starts it, and Ray routes to it only once its models are loaded (the app's lifespan
holds the replica's start until the registry is ready; `check_health` keeps watching after).
A replica that Ray gave a GPU (`ray_actor_options.num_gpus`) runs MC dropout on it; where torch
has no CUDA (Ray's logical GPUs in CI) it falls back to CPU with a warning (service.device).

    serve run deploy/ray/serve_config.yaml     # Ray's CLI; the same file feeds KubeRay's RayService
    dropserve serve --ray --replicas 2         # the dropserve CLI (see `run`)

Needs the `ray` extra: `pip install -c constraints.txt 'dropserve[ray]'`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import create_app
from service.config import Settings, get_settings
from service.observability import configure_logging

__all__ = [
    "APP_NAME",
    "REPLICA_HEADER",
    "DropserveDeployment",
    "ReplicaHeaderMiddleware",
    "app_builder",
    "build_application",
    "replica_settings",
    "run",
]

logger = logging.getLogger(__name__)

APP_NAME = "dropserve"
REPLICA_HEADER = "X-Dropserve-Replica"
REQUEST_ID_HEADER = "X-Request-ID"
# How long a replica may take to load and warm its models before Ray counts the start as failed.
LOAD_TIMEOUT_S = 600.0


class ReplicaHeaderMiddleware:
    """Names the replica that answered in every response (only added under Ray Serve).

    Ray's proxy adds the request's `X-Request-ID` to every response itself; the app's copy of the
    same id is dropped so that clients see the header once.
    """

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.replica = replica

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        proxy_id = Headers(scope=scope).get(REQUEST_ID_HEADER)

        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.append(REPLICA_HEADER, self.replica)
                if proxy_id is not None and headers.get(REQUEST_ID_HEADER) == proxy_id:
                    del headers[REQUEST_ID_HEADER]
            await send(message)

        await self.app(scope, receive, send_named)


def replica_settings(overrides: Mapping[str, Any], gpu_ids: list[Any]) -> Settings:
    """Settings for one replica: the environment, then `overrides`, then Ray's placement.

    `auto` becomes `cuda` when Ray assigned this replica a GPU and `cpu` when it did not (a
    replica must not use a GPU that Ray gave to another). The separate metrics listener is off:
    replicas share a node, and /metrics answers through the Serve proxy instead.

    Args:
        overrides: Settings field names and values, e.g. from the Serve config's `args`.
        gpu_ids: `ray.get_gpu_ids()` in the replica.

    Raises:
        ValueError: a key of `overrides` is not a Settings field.
    """
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise ValueError(
            f"unknown dropserve settings {unknown}; use field names of service.config.Settings, "
            f"e.g. models_dir, device, default_samples"
        )
    settings = get_settings(**overrides)
    device = settings.device
    if device == "auto":
        device = "cuda" if gpu_ids else "cpu"
    return settings.model_copy(update={"device": device, "metrics_port": 0})


def _hold_startup_until_ready(app: FastAPI, timeout_s: float) -> None:
    """Make the app's lifespan startup end only once the models are loaded (or failed)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state:
            await _wait_for_models(app, timeout_s)
            yield state

    app.router.lifespan_context = lifespan


async def _wait_for_models(app: FastAPI, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    registry = app.state.dataplane.registry
    while not registry.ready:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the models were not loaded within {timeout_s:.0f} s")
        await asyncio.sleep(0.05)
    if not registry.models():
        raise RuntimeError(
            f"no model could be loaded from {app.state.dataplane.settings.models_dir}: "
            f"{registry.failures or 'the folder holds no bundle'}"
        )


@serve.deployment(
    name=APP_NAME,
    num_replicas=1,
    ray_actor_options={"num_cpus": 1},
    max_ongoing_requests=16,
    health_check_period_s=10,
    graceful_shutdown_timeout_s=30,
)
@serve.ingress()
class DropserveDeployment:
    """One Serve replica: `create_app(settings)` with its own models, built in the replica."""

    def __init__(
        self, settings: Mapping[str, Any] | None = None, load_timeout_s: float = LOAD_TIMEOUT_S
    ) -> None:
        self._overrides = dict(settings or {})
        self._load_timeout_s = load_timeout_s
        self._app: FastAPI | None = None

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Called by Ray in the replica after `__init__`; Ray then runs the app's lifespan."""
        gpu_ids = ray.get_gpu_ids()
        settings = replica_settings(self._overrides, gpu_ids)
        configure_logging(settings.log_level, settings.log_format)
        replica = serve.get_replica_context().replica_id.unique_id
        logger.info(
            "replica %s (pid %d): GPUs from Ray %s, device setting %s",
            replica,
            os.getpid(),
            gpu_ids,
            settings.device,
        )
        app = create_app(settings)
        app.add_middleware(ReplicaHeaderMiddleware, replica=replica)
        _hold_startup_until_ready(app, self._load_timeout_s)
        self._app = app
        return app

    def check_health(self) -> None:
        """Ray's health check: raises unless this replica would answer /health/ready with 200."""
        dataplane = getattr(self._app.state, "dataplane", None) if self._app else None
        if dataplane is None or not dataplane.registry.ready:
            raise RuntimeError("the models are still loading")
        if dataplane.draining or not dataplane.registry.models():
            raise RuntimeError("no model is being served")


def build_application(
    overrides: Mapping[str, Any] | None = None,
    *,
    num_replicas: int | None = None,
    autoscaling_config: Mapping[str, Any] | None = None,
    ray_actor_options: Mapping[str, Any] | None = None,
    graceful_shutdown_timeout_s: float | None = None,
) -> Any:
    """The Serve application (`Deployment.bind(...)`) that `serve.run` deploys.

    Args:
        overrides: Settings fields for every replica, on top of the replicas' environment.
        num_replicas: a fixed number of replicas (or use `autoscaling_config`).
        autoscaling_config: Ray Serve autoscaling, e.g. `{"min_replicas": 1, "max_replicas": 4}`.
        ray_actor_options: per replica resources, e.g. `{"num_cpus": 2, "num_gpus": 1}`.
        graceful_shutdown_timeout_s: seconds a stopping replica gets for requests in flight.

    Returns:
        A `ray.serve.Application`.
    """
    options: dict[str, Any] = {}
    if num_replicas is not None:
        options["num_replicas"] = num_replicas
    if autoscaling_config is not None:
        options["autoscaling_config"] = dict(autoscaling_config)
    if ray_actor_options is not None:
        options["ray_actor_options"] = dict(ray_actor_options)
    if graceful_shutdown_timeout_s is not None:
        options["graceful_shutdown_timeout_s"] = graceful_shutdown_timeout_s
    replica_settings(overrides or {}, [])  # fail here, not in every replica, on a bad key
    deployment: Any = DropserveDeployment  # a ray.serve.Deployment; mypy sees the plain class
    return deployment.options(**options).bind(dict(overrides or {}))


def app_builder(args: dict[str, Any]) -> Any:
    """The Serve config's `import_path` target: `args` are Settings fields for every replica."""
    return build_application(args)


def run(
    settings: Settings,
    overrides: Mapping[str, Any],
    *,
    replicas: int,
    replica_cpus: float,
    replica_gpus: float,
    address: str | None,
) -> None:
    """Deploy dropserve on Ray Serve and block until SIGTERM or SIGINT, then remove it.

    Args:
        settings: where the Serve HTTP proxy listens (`host`, `port`), logging, shutdown grace.
        overrides: Settings fields the replicas get on top of their own environment.
        replicas: number of replicas, one process each.
        replica_cpus: CPUs Ray reserves per replica.
        replica_gpus: GPUs Ray reserves per replica (fractions share one GPU).
        address: the Ray cluster (`ray.init`'s address); None connects to `RAY_ADDRESS` or a
            running local cluster, else starts one; `local` always starts a new local one.
    """
    configure_logging(settings.log_level, settings.log_format)
    # Replicas may start in another folder (or on another node): give them an absolute path.
    overrides = {**overrides, "models_dir": str(Path(settings.models_dir).resolve())}
    ray.init(address=address, include_dashboard=False if address == "local" else None)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        application = build_application(
            overrides,
            num_replicas=replicas,
            ray_actor_options={"num_cpus": replica_cpus, "num_gpus": replica_gpus},
            graceful_shutdown_timeout_s=settings.shutdown_grace_s,
        )
        serve.run(application, name=APP_NAME, route_prefix="/")
        logger.info(
            "serving on http://%s:%d through Ray Serve, %d replica(s)",
            settings.host,
            settings.port,
            replicas,
        )
        while not stop.wait(0.5):
            pass
        logger.info("shutting down: removing the %s application from Ray Serve", APP_NAME)
        serve.delete(APP_NAME)
    finally:
        ray.shutdown()
