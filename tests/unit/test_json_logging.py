"""Log formatting: JSON lines with the documented keys, text lines, and the request id."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from service.observability import RequestContext, configure_logging, current_request_id
from service.observability.context import enter, request_id_from
from service.observability.logs import JsonFormatter, RequestIdFilter, TextFormatter

T = TypeVar("T")


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("dropserve.test", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def in_request(request_id: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh context where `request_id` is the current request."""

    def run() -> T:
        enter(RequestContext(request_id))
        return fn()

    return contextvars.copy_context().run(run)


def test_json_line_has_the_documented_keys() -> None:
    line = JsonFormatter().format(record("hello %s", "world"))
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message"}
    assert entry["message"] == "hello world"
    assert entry["level"] == "warning"
    assert entry["logger"] == "dropserve.test"
    assert entry["time"].endswith("Z")
    assert "\n" not in line


def test_structured_fields_become_keys_but_never_replace_the_core_ones() -> None:
    fields = {"status": 200, "path": "/v1/models/{name}/predict", "message": "spoofed"}
    entry = json.loads(JsonFormatter().format(record("done", fields=fields, request_id="r-1")))
    assert entry["status"] == 200
    assert entry["path"] == "/v1/models/{name}/predict"
    assert entry["message"] == "done"
    assert entry["request_id"] == "r-1"


def test_exceptions_and_odd_values_stay_one_json_line() -> None:
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        failed = record("failed", fields={"value": object()})
        failed.exc_info = sys.exc_info()
    line = JsonFormatter().format(failed)
    assert "\n" not in line
    entry = json.loads(line)
    assert "ValueError: broken" in entry["exception"]
    assert entry["value"].startswith("<object object")


def test_the_filter_stamps_the_current_request_id() -> None:
    stamped = record()
    assert RequestIdFilter().filter(stamped)
    assert stamped.request_id is None  # type: ignore[attr-defined]
    inside = record()
    in_request("abc-123", lambda: RequestIdFilter().filter(inside))
    assert inside.request_id == "abc-123"  # type: ignore[attr-defined]
    assert current_request_id() is None  # the request's context did not leak out


def test_text_lines_show_the_request_id() -> None:
    formatter = TextFormatter()
    assert "dropserve.test [r-9]: hello you" in formatter.format(
        record("hello you", request_id="r-9")
    )
    assert "dropserve.test: hello you" in formatter.format(record("hello you", request_id=None))


@pytest.mark.parametrize("given", ["abc", "trace-1.2:3_x", "A" * 128])
def test_a_plain_client_request_id_is_kept(given: str) -> None:
    assert request_id_from(given) == given


@pytest.mark.parametrize("given", [None, "", "has space", "line\nbreak", "A" * 129, 'q"uote'])
def test_other_request_ids_are_replaced(given: str | None) -> None:
    made = request_id_from(given)
    assert made != given
    assert len(made) == 32
    assert int(made, 16) >= 0


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_configure_logging_writes_json_and_replaces_its_own_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", first)
    configure_logging("info", "json", second)
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "dropserve"]
    assert len(ours) == 1
    logging.getLogger("uvicorn.error").info("Started server process")
    in_request("req-7", lambda: logging.getLogger("service.x").debug("not at info level"))
    in_request("req-7", lambda: logging.getLogger("service.x").info("in a request"))
    assert first.getvalue() == ""
    entries = [json.loads(line) for line in second.getvalue().splitlines()]
    assert [(e["logger"], e.get("request_id")) for e in entries] == [
        ("uvicorn.error", None),
        ("service.x", "req-7"),
    ]


@pytest.mark.usefixtures("root_logging")
def test_configure_logging_text() -> None:
    stream = io.StringIO()
    configure_logging("warning", "text", stream)
    logging.getLogger("service.y").info("hidden")
    logging.getLogger("service.y").warning("shown")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith("WARNING service.y: shown")
