"""Domain errors. Each carries the HTTP status it maps to; no web framework is imported here."""

from __future__ import annotations

__all__ = [
    "BundleError",
    "DataError",
    "DropserveError",
    "ExportError",
    "InvalidInputError",
    "ModelNotFoundError",
    "NotReadyError",
    "PayloadTooLargeError",
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
    """The server is still loading or warming up its models."""

    status_code = 503


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
