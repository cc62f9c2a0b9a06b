"""Domain errors. Each carries the HTTP status it maps to; no web framework is imported here."""

from __future__ import annotations

__all__ = [
    "BundleError",
    "DataError",
    "DropserveError",
    "ExportError",
    "ForbiddenError",
    "InvalidInputError",
    "ModelImportError",
    "ModelNotFoundError",
    "NotReadyError",
    "OverloadedError",
    "PayloadTooLargeError",
    "RequestTimeoutError",
    "UnauthorizedError",
]


class DropserveError(Exception):
    """Base of every error dropserve raises on purpose; `message` is safe to show to clients."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(DropserveError):
    """The request is well-formed JSON but its content does not fit the model."""

    status_code = 422


class ModelNotFoundError(DropserveError):
    """No loaded model (or version) has that name."""

    status_code = 404


class NotReadyError(DropserveError):
    """The server is still loading its models, or is shutting down."""

    status_code = 503
    retry_after: int = 1


class OverloadedError(DropserveError):
    """More inference requests are in flight than the queue bound allows."""

    status_code = 503
    retry_after: int = 1


class RequestTimeoutError(DropserveError):
    """Inference did not finish within the configured request timeout."""

    status_code = 504


class UnauthorizedError(DropserveError):
    """Missing or wrong credentials."""

    status_code = 401


class ForbiddenError(DropserveError):
    """The endpoint is disabled by configuration."""

    status_code = 403


class PayloadTooLargeError(DropserveError):
    """The request body is over the configured size limit."""

    status_code = 413


class BundleError(DropserveError):
    """A model bundle on disk is missing a file, fails its checksum or has a bad manifest."""


class DataError(DropserveError):
    """A training data file cannot be used (missing values, non-numeric cells, unknown columns)."""

    status_code = 400


class ExportError(DropserveError):
    """The ONNX export did not reproduce the PyTorch eval output within tolerance."""


class ModelImportError(DropserveError):
    """A network from another framework cannot become a bundle (unsupported graph, bad file)."""

    status_code = 400
