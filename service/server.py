"""Run the app under uvicorn: one process, models loaded in the background after bind."""

from __future__ import annotations

import logging

import uvicorn

from service.api import create_app
from service.config import Settings

__all__ = ["configure_logging", "serve"]


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def serve(settings: Settings) -> None:
    """Serve every bundle under `settings.models_dir` until interrupted."""
    configure_logging(settings.log_level)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
    )
