"""Observability: Prometheus metrics, structured logs and request ids.

`metrics.Metrics` owns a per-app registry of every instrument; `recorder.InferenceRecorder`
feeds it the data plane's reports; `access.AccessMiddleware` gives each request an id, its HTTP
metrics and one access line; `configure_logging` writes every record as JSON or text with that
id. Only the light parts are re-exported here: a process that only supervises others (or logs)
imports them without the data plane, and so without torch.
"""

from service.observability.context import RequestContext, current_request_id
from service.observability.logs import LogFormat, configure_logging

__all__ = ["LogFormat", "RequestContext", "configure_logging", "current_request_id"]
