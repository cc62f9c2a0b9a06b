"""dropserve's own JSON API under /v1: model metadata, `predict` and `uncertainty`.

Most inference requests never reach the FastAPI routes in `inference`: the ASGI fast path
(`fast_path`) answers every well-formed body with the same data plane calls, response builders
and serialisation, and hands everything else (coercion, invalid bodies) to those routes.
"""

from fastapi import APIRouter

from service.api.v1 import inference, models
from service.api.v1.fast_path import InferenceFastPath

__all__ = ["InferenceFastPath", "router"]

router = APIRouter()
router.include_router(models.router)
router.include_router(inference.router)
