"""Observability: Prometheus metrics, structured logs and request ids.

`Metrics` owns a per-app registry of every instrument; `InferenceRecorder` feeds it the data
plane's reports; `AccessMiddleware` gives each request an id, its HTTP metrics and one access
line; `configure_logging` writes every record as JSON or text with that id.
"""

from service.observability.access import AccessMiddleware
from service.observability.context import RequestContext, current_request_id
from service.observability.logs import LogFormat, configure_logging
from service.observability.metrics import Metrics, serve_metrics
from service.observability.recorder import InferenceRecorder

__all__ = [
    "AccessMiddleware",
    "InferenceRecorder",
    "LogFormat",
    "Metrics",
    "RequestContext",
    "configure_logging",
    "current_request_id",
    "serve_metrics",
]
