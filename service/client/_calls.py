"""The requests and answers of the JSON API, apart from how they are sent (sync or async)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from service.client._errors import ApiError

__all__ = [
    "Call",
    "Rows",
    "check",
    "full_url",
    "model_path",
    "no_answer",
    "predict_call",
    "uncertainty_call",
]

# A list of rows, each a list of numbers in feature order or a mapping from feature name to
# number; a NumPy array (anything with `tolist()`) or a pandas DataFrame is converted.
Rows = Any


@dataclass(frozen=True)
class Call:
    """One HTTP request: method, path under the base URL, and the JSON body if any."""

    method: str
    path: str
    body: dict[str, Any] | None = None


def model_path(name: str, version: int | None) -> str:
    path = f"/v1/models/{quote(name, safe='')}"
    return path if version is None else f"{path}/versions/{int(version)}"


def _instances(rows: Rows) -> list[Any]:
    """The rows as JSON-ready lists or dicts, duck-typed so numpy and pandas stay optional."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        records: list[Any] = rows.to_dict(orient="records")
        return records
    if hasattr(rows, "tolist"):  # a NumPy array
        rows = rows.tolist()
    if isinstance(rows, Mapping | str | bytes):
        raise TypeError(
            "rows must be a list of rows (lists in feature order, or dicts keyed by feature "
            f"name), got a single {type(rows).__name__}; wrap one row in a list: [row]"
        )
    return [dict(row) if isinstance(row, Mapping) else list(row) for row in rows]


def predict_call(name: str, rows: Rows, version: int | None) -> Call:
    return Call("POST", f"{model_path(name, version)}/predict", {"instances": _instances(rows)})


def uncertainty_call(
    name: str,
    rows: Rows,
    *,
    samples: int | None,
    seed: int | None,
    interval: float | None,
    return_samples: bool,
    version: int | None,
) -> Call:
    body: dict[str, Any] = {"instances": _instances(rows)}
    # Options left out are left to the server, whose defaults are its settings.
    for key, value in (("samples", samples), ("seed", seed), ("interval", interval)):
        if value is not None:
            body[key] = value
    if return_samples:
        body["return_samples"] = True
    return Call("POST", f"{model_path(name, version)}/uncertainty", body)


def check(response: httpx.Response) -> dict[str, Any]:
    """The JSON answer of a successful response; otherwise ApiError with the server's message.

    Raises:
        ApiError: the status is not 2xx.
    """
    if response.is_success:
        answer: dict[str, Any] = response.json()
        return answer
    request_id = response.headers.get("X-Request-ID")
    message = response.text.strip() or response.reason_phrase
    try:
        body = response.json()
    except ValueError:
        body = None  # not JSON: a proxy's page, say; its text is the message
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
        request_id = body.get("request_id") or request_id
    raise ApiError(response.status_code, message, request_id)


def full_url(base_url: httpx.URL, path: str) -> str:
    return str(base_url).rstrip("/") + path


def no_answer(exc: httpx.TransportError, url: str, timeout: float | None) -> ApiError:
    """ApiError for a request that got no answer, saying what to check."""
    if isinstance(exc, httpx.TimeoutException):
        return ApiError(
            None,
            f"no answer from {url} within {timeout} s; raise the client's timeout, or ask for "
            "fewer rows or samples",
        )
    return ApiError(None, f"cannot reach {url} ({exc}); check that the server runs there")
