"""The app factory: settings in, a FastAPI app out; models load in the background at startup."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service import __version__
from service.api import v1, v2
from service.api.errors import install_error_handlers
from service.api.middleware import ApiKeyMiddleware, BodyLimitMiddleware
from service.api.openapi import LiveExamplesApp
from service.api.routes import admin, docs, health, ui
from service.api.routes import metrics as metrics_route
from service.config import Settings
from service.dataplane import DataPlane, EngineFactory, ModelRegistry
from service.dataplane.admin import ModelAdmin
from service.dataplane.model_set import save_model_set, sibling_model_set
from service.dataplane.readiness import readiness_handler
from service.dataplane.watch import folder_signature, watch_models
from service.observability.access import AccessMiddleware
from service.observability.metrics import Metrics, serve_metrics
from service.observability.process_metrics import metrics_handler
from service.observability.recorder import InferenceRecorder
from service.peers import ProcessPeers, answer_peers

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

DESCRIPTION = """
Serve dropout-trained MLPs two ways:

* **predict**: deterministic output, every unit kept and the weight-scaling rule folded into an
  ONNX graph run by ONNX Runtime;
* **uncertainty**: Monte-Carlo dropout, T stochastic passes in PyTorch, summarised as predictive
  mean, variance and interval (regression) or probabilities, entropy and mutual information
  (classification).
"""


def create_app(
    settings: Settings | None = None,
    *,
    peers: ProcessPeers | None = None,
    engines: EngineFactory | None = None,
) -> FastAPI:
    """Build the app. Models are loaded after the server starts listening, so liveness answers
    at once and readiness turns 200 when every bundle is loaded and warmed.

    Args:
        settings: the configuration; from the environment when omitted.
        peers: this process's siblings when its host runs several on one port (None alone):
            `/metrics` and the admin actions then reach every process.
        engines: builds the engines of each model version; the ONNX and PyTorch ones when
            omitted (tests of the HTTP edge pass fake ones).
    """
    settings = settings or Settings()
    metrics = Metrics()  # per app: apps built side by side (tests) never share counts

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = ModelRegistry(settings, on_reload=metrics.observe_reload)
        if engines is not None:
            registry.engines = engines
        app.state.dataplane = DataPlane(registry, settings, observer=InferenceRecorder(metrics))
        app.state.admin = admin = ModelAdmin(registry, peers)
        metrics.attach(app.state.dataplane)
        exporter = AsyncExitStack()
        if settings.metrics_port:
            exporter.enter_context(serve_metrics(metrics, settings.host, settings.metrics_port))
        # Of several processes on one port only the first takes connections while it loads (so
        # that liveness answers at once); the others take none before their models are loaded,
        # so that no request meets one still loading once readiness said 200.
        accepting = peers is None or peers.index == 0
        if peers is not None:  # siblings ask this process for its metrics and admin actions
            handlers = {
                "metrics": metrics_handler(metrics.registry),
                "ready": readiness_handler(app.state.dataplane, lambda: accepting),
                **admin.handlers(),
            }
            await exporter.enter_async_context(answer_peers(peers, handlers))
            # A process that starts beside running siblings (restarted after a crash) serves
            # what they serve, not what the folder holds by now.
            registry.on_change = partial(save_model_set, peers)
            metrics.process_restarts.set(peers.restarts)
        pinned = None if peers is None else sibling_model_set(peers)
        # Seen before the first load reads the folder, so a version added meanwhile is caught.
        seen = await asyncio.to_thread(folder_signature, settings.models_dir)
        loading = asyncio.create_task(asyncio.to_thread(registry.load_all, pinned))
        loading.add_done_callback(partial(_log_task_failure, "model loading"))
        watching = None
        if settings.watch_s:
            watching = asyncio.create_task(watch_models(registry, settings.watch_s, seen))
            watching.add_done_callback(partial(_log_task_failure, "watching the models folder"))
        hangup = _install_sighup_reload(registry)
        if not accepting:
            await asyncio.wait({loading})  # uvicorn takes connections once this returns
            accepting = True
        try:
            yield
        finally:
            if watching is not None:
                watching.cancel()
                with suppress(asyncio.CancelledError):
                    await watching
            await exporter.aclose()
            if hangup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            if not loading.done():
                loading.cancel()

    # Its OpenAPI document shows examples for the models loaded now, not those at startup.
    app = LiveExamplesApp(
        title="dropserve",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs and /redoc are served from the package by routes.docs, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.metrics = metrics
    app.state.peers = peers
    # Middleware runs outermost-last-added: the fast path, innermost, sees a body that passed the
    # size, type and key checks; CORS answers preflights before keys are checked,
    # and keys are checked before a body is read; the access middleware, outermost, sees (and
    # gives a request id to) every answer, the refusals of the others included.
    if settings.fast_path:
        app.add_middleware(v1.InferenceFastPath)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=settings.api_keys)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(AccessMiddleware, metrics=metrics, routes=app)
    install_error_handlers(app)
    for router in (health.router, v1.router, admin.router, v2.router, docs.router):
        app.include_router(router)
    if not settings.metrics_port:
        app.include_router(metrics_route.router)
    if settings.ui:
        app.include_router(ui.router)
    return app


def _install_sighup_reload(registry: ModelRegistry) -> bool:
    """SIGHUP rescans the models folder, as POST /admin/reload does (main thread only)."""
    loop = asyncio.get_running_loop()

    def reload() -> None:
        logger.info("SIGHUP: reloading models")
        task = loop.create_task(asyncio.to_thread(registry.reload))
        task.add_done_callback(partial(_log_task_failure, "reloading on SIGHUP"))

    try:
        loop.add_signal_handler(signal.SIGHUP, reload)
    except (NotImplementedError, RuntimeError, ValueError):
        return False  # not the main thread (in-process test clients) or no SIGHUP here
    return True


def _log_task_failure(what: str, task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s failed", what, exc_info=task.exception())
