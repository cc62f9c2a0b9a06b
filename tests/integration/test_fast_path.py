"""The inference fast path answers exactly what FastAPI answers, byte for byte.

Two apps over the same bundles, one with `DROPSERVE_FAST_PATH` on and one off, get the same
requests (good, not plain and broken); status, body and content type must be identical. A spy
on the fast path's handlers proves the plain requests really took it and the rest did not.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.v1 import fast_path
from tests.integration.conftest import make_client

LIMITS: dict[str, Any] = {
    "max_rows": 50,
    "max_samples": 5000,
    "max_work": 20_000,
    "max_return_samples": 100,
}
ROW = [0.5, -1.0, 2.0]

# (path, body, taken by the fast path?, status) Bodies are JSON text, so non-standard JSON (NaN) and
# malformed bodies can be sent too.
CASES: list[tuple[str, str | bytes, bool, int]] = [
    # plain requests: the fast path answers
    ("/v1/models/toyreg/predict", json.dumps({"instances": [ROW, ROW]}), True, 200),
    ("/v1/models/toyreg/versions/1/predict", json.dumps({"instances": [ROW]}), True, 200),
    ("/v1/models/toycls/predict", json.dumps({"instances": [ROW]}), True, 200),
    (
        "/v1/models/toyreg/predict",
        json.dumps({"instances": [{"x0": 1, "x1": 2, "x2": 3}]}),
        True,
        200,
    ),
    ("/v1/models/toyreg/uncertainty", json.dumps({"instances": [ROW], "seed": 7}), True, 200),
    (
        "/v1/models/toyreg/versions/2/uncertainty",
        json.dumps(
            {
                "instances": [ROW, ROW],
                "samples": 50,
                "seed": 3,
                "interval": 0.8,
                "return_samples": True,
            }
        ),
        True,
        200,
    ),
    (
        "/v1/models/toycls/uncertainty",
        json.dumps({"instances": [ROW], "samples": 20, "seed": 11, "return_samples": False}),
        True,
        200,
    ),
    (
        "/v1/models/toyreg/uncertainty",
        json.dumps({"instances": [ROW], "seed": 2**63 - 1, "samples": 1}),
        True,
        200,
    ),
    # plain shape, refused by the data plane: the fast path maps the error the same way
    ("/v1/models/nope/predict", json.dumps({"instances": [ROW]}), True, 404),
    ("/v1/models/toyreg/versions/9/predict", json.dumps({"instances": [ROW]}), True, 404),
    ("/v1/models/toyreg/predict", json.dumps({"instances": []}), True, 422),
    ("/v1/models/toyreg/predict", json.dumps({"instances": [[1, 2]]}), True, 422),
    ("/v1/models/toyreg/predict", json.dumps({"instances": [[1, "2", 3]]}), True, 422),
    ("/v1/models/toyreg/predict", json.dumps({"instances": [[1, True, 3]]}), True, 422),
    ("/v1/models/toyreg/predict", json.dumps({"instances": [ROW] * 51}), True, 422),
    ("/v1/models/toyreg/predict", json.dumps({"instances": [[1e308, -1e308, 1e308]]}), True, 422),
    (
        "/v1/models/toyreg/uncertainty",
        json.dumps({"instances": [ROW], "seed": 1, "samples": 6000}),
        True,
        422,
    ),
    (
        "/v1/models/toyreg/uncertainty",
        json.dumps({"instances": [ROW] * 10, "seed": 1, "samples": 5000}),
        True,
        422,
    ),
    (
        "/v1/models/toyreg/uncertainty",
        json.dumps({"instances": [ROW], "samples": 500, "return_samples": True, "seed": 1}),
        True,
        422,
    ),
    # bodies that are not plain, or invalid: FastAPI answers, as it would without the fast
    # path; the types are strict, so a string, bool or float where a number or bool belongs is
    # a 422, never coerced
    ("/v1/models/toyreg/predict", json.dumps({"instances": [ROW], "extra": 1}), False, 422),
    ("/v1/models/toyreg/predict", json.dumps({"rows": [ROW]}), False, 422),
    ("/v1/models/toyreg/predict", json.dumps([ROW]), False, 422),
    ("/v1/models/toyreg/predict", json.dumps({"instances": "1,2,3"}), False, 422),
    ("/v1/models/toyreg/predict", '{"instances": [[NaN, 1, 2]]}', False, 422),
    ("/v1/models/toyreg/predict", '{"instances": [[1, 2, 3]]', False, 400),
    ("/v1/models/toyreg/predict", "", False, 400),
    ("/v1/models/toyreg/predict", b'{"instances": [[1, 2, 3]]}\xff', False, 400),
    ("/v1/models/toyreg/versions/01/predict", json.dumps({"instances": [ROW]}), False, 200),
    ("/v1/models/toyreg/versions/abc/predict", json.dumps({"instances": [ROW]}), False, 422),
    ("/v1/models/toyreg/versions/-1/predict", json.dumps({"instances": [ROW]}), False, 404),
    (
        "/v1/models/toyreg/uncertainty",
        json.dumps({"instances": [ROW], "samples": "30", "seed": 1}),
        False,
        422,
    ),
    (
        "/v1/models/toyreg/uncertainty",
        json.dumps({"instances": [ROW], "samples": 30.0, "seed": 1}),
        False,
        422,
    ),
    (
        "/v1/models/toyreg/uncertainty",
        json.dumps({"instances": [ROW], "seed": 1, "samples": 0}),
        False,
        422,
    ),
    (
        "/v1/models/toyreg/uncertainty",
        json.dumps({"instances": [ROW], "seed": 1, "samples": True}),
        False,
        422,
    ),
    ("/v1/models/toyreg/uncertainty", json.dumps({"instances": [ROW], "seed": -1}), False, 422),
    ("/v1/models/toyreg/uncertainty", json.dumps({"instances": [ROW], "seed": 2**63}), False, 422),
    ("/v1/models/toyreg/uncertainty", json.dumps({"instances": [ROW], "seed": 2**70}), False, 422),
    (
        "/v1/models/toyreg/uncertainty",
        json.dumps({"instances": [ROW], "seed": 1, "interval": 1}),
        False,
        422,
    ),
    (
        "/v1/models/toyreg/uncertainty",
        json.dumps({"instances": [ROW], "seed": 1, "interval": 1.0}),
        False,
        422,
    ),
    (
        "/v1/models/toyreg/uncertainty",
        json.dumps({"instances": [ROW], "seed": 1, "interval": "0.9"}),
        False,
        422,
    ),
    (
        "/v1/models/toyreg/uncertainty",
        json.dumps({"instances": [ROW], "seed": 1, "return_samples": "yes"}),
        False,
        422,
    ),
]


@pytest.fixture(scope="module")
def fast(toy_models_dir: Path) -> Iterator[TestClient]:
    yield from make_client(toy_models_dir, fast_path=True, **LIMITS)


@pytest.fixture(scope="module")
def slow(toy_models_dir: Path) -> Iterator[TestClient]:
    yield from make_client(toy_models_dir, fast_path=False, **LIMITS)


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the requests the fast path's handlers answered, by mode."""
    calls: Counter[str] = Counter()
    for mode, (accepts, handler) in list(fast_path._MODES.items()):

        def spy(
            *args: Any, _mode: str = mode, _handler: Callable[..., Awaitable[bytes]] = handler
        ) -> Awaitable[bytes]:
            calls[_mode] += 1
            return _handler(*args)

        monkeypatch.setitem(fast_path._MODES, mode, (accepts, spy))
    return calls


def _post(client: TestClient, path: str, body: str | bytes) -> tuple[int, bytes, str]:
    response = client.post(
        path,
        content=body.encode() if isinstance(body, str) else body,
        headers={"Content-Type": "application/json", "X-Request-ID": "parity-1"},
    )
    return response.status_code, response.content, response.headers["content-type"]


@pytest.mark.parametrize(("path", "body", "expected_fast", "status"), CASES)
def test_same_answer_with_and_without_the_fast_path(
    fast: TestClient,
    slow: TestClient,
    taken: Counter[str],
    path: str,
    body: str | bytes,
    expected_fast: bool,
    status: int,
) -> None:
    fast_status, fast_body, fast_type = _post(fast, path, body)
    slow_status, slow_body, slow_type = _post(slow, path, body)
    assert (fast_status, fast_type) == (slow_status, slow_type)
    assert fast_body == slow_body
    assert fast_status == status, fast_body
    assert sum(taken.values()) == (1 if expected_fast else 0)


def test_plain_requests_succeed_and_errors_are_named(fast: TestClient) -> None:
    """The parity above would also hold if both paths were broken the same way."""
    ok = fast.post("/v1/models/toyreg/predict", json={"instances": [ROW, ROW]})
    assert ok.status_code == 200
    predictions = ok.json()["predictions"]
    assert len(predictions) == 2
    assert all(math.isfinite(v[0]) for v in predictions)
    missing = fast.post("/v1/models/nope/predict", json={"instances": [ROW]})
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"]
    assert missing.json()["request_id"] == missing.headers["x-request-id"]
    coerced = fast.post("/v1/models/toyreg/uncertainty", json={"instances": [ROW], "samples": "5"})
    assert coerced.status_code == 422
    assert "'samples': Input should be a valid integer" in coerced.json()["error"]


def test_seeded_uncertainty_is_the_same_on_both_paths(fast: TestClient, slow: TestClient) -> None:
    body = {"instances": [ROW], "samples": 64, "seed": 5}
    assert (
        fast.post("/v1/models/toyreg/uncertainty", json=body).json()
        == slow.post("/v1/models/toyreg/uncertainty", json=body).json()
    )


def test_an_unseeded_request_echoes_a_seed_that_replays_it(
    fast: TestClient, slow: TestClient, taken: Counter[str]
) -> None:
    first = fast.post("/v1/models/toyreg/uncertainty", json={"instances": [ROW], "seed": None})
    assert first.status_code == 200
    assert taken["uncertainty"] == 1
    replay = {"instances": [ROW], "seed": first.json()["seed"]}
    assert slow.post("/v1/models/toyreg/uncertainty", json=replay).content == first.content


def test_other_methods_and_routes_pass_through(fast: TestClient, taken: Counter[str]) -> None:
    assert fast.get("/v1/models/toyreg/predict").status_code == 405
    assert fast.post("/v1/models/toyreg/explain", json={"instances": [ROW]}).status_code == 404
    assert fast.get("/v1/models/toyreg").status_code == 200
    assert not taken
