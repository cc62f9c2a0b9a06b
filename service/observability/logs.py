"""Log output: JSON lines (one object per record) or plain text, both carrying the request id.

Every record gets the id of the request it was logged for (see `context`). Structured fields go
in `extra={"fields": {...}}`; the JSON formatter adds them as top-level keys.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from service.observability.context import current_request_id

__all__ = ["JsonFormatter", "LogFormat", "RequestIdFilter", "TextFormatter", "configure_logging"]

LogFormat = Literal["json", "text"]
HANDLER_NAME = "dropserve"
# Keys of every JSON line; structured fields never replace them.
CORE_KEYS = ("time", "level", "logger", "message", "request_id")


class RequestIdFilter(logging.Filter):
    """Stamp each record with the current request id (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id when
    in a request, the record's structured fields, and the traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            entry.update({k: v for k, v in fields.items() if k not in CORE_KEYS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request id]: message`, for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        request_id = getattr(record, "request_id", None)
        record.request_tag = f" [{request_id}]" if request_id else ""
        return super().formatMessage(record)


def configure_logging(
    level: str, log_format: LogFormat = "text", stream: TextIO | None = None
) -> logging.Handler:
    """Send every logger's records (uvicorn's included) to `stream` (stderr) in `log_format`.

    Calling it again replaces the handler it installed before; other handlers are left alone.

    Args:
        level: debug, info, warning or error.
        log_format: `json` for one JSON object per line, `text` for plain lines.
        stream: where to write; standard error by default.

    Returns:
        The installed handler.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
    installed = logging.StreamHandler(stream or sys.stderr)
    installed.set_name(HANDLER_NAME)
    installed.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    installed.addFilter(RequestIdFilter())
    root.addHandler(installed)
    root.setLevel(level.upper())
    return installed
