"""The app factory: settings in, a FastAPI app out; models load in the background at startup."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI

from service import __version__
from service.api.body_limits import BodyLimitMiddleware
from service.api.error_handlers import install_error_handlers
from service.api.routes import health, inference, models
from service.config import Settings
from service.dataplane import DataPlane
from service.registry import ModelRegistry

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


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Models are loaded after the server starts listening, so liveness answers
    at once and readiness turns 200 when every bundle is loaded and warmed."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        registry = ModelRegistry(settings)
        app.state.dataplane = DataPlane(registry, settings)
        loading = asyncio.create_task(asyncio.to_thread(registry.load_all))
        loading.add_done_callback(_log_load_failure)
        try:
            yield
        finally:
            if not loading.done():
                loading.cancel()

    app = FastAPI(
        title="dropserve",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    for router in (health.router, models.router, inference.router):
        app.include_router(router)
    return app


def _log_load_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("model loading failed", exc_info=task.exception())
