"""The HTTP edge: FastAPI app factory, routes, schemas and error mapping."""

from service.api.app import create_app

__all__ = ["create_app"]
