"""Every example in /docs works: each request example answers 200 on the default models, and each
response example has the shape of the real answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.conftest import make_client

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def defaults() -> Iterator[TestClient]:
    yield from make_client(MODELS)


@pytest.fixture(scope="module")
def spec(defaults: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = defaults.get("/openapi.json").json()
    return document


def same_shape(documented: Any, actual: Any, where: str = "") -> None:
    """The same keys at every level and the same list lengths; values may differ."""
    if isinstance(documented, dict):
        assert isinstance(actual, dict), where
        assert documented.keys() == actual.keys(), where
        for key, value in documented.items():
            same_shape(value, actual[key], f"{where}.{key}")
    elif isinstance(documented, list):
        assert isinstance(actual, list), where
        assert len(documented) == len(actual), where
        for i, (value, real) in enumerate(zip(documented, actual, strict=True)):
            same_shape(value, real, f"{where}[{i}]")
    else:
        assert type(documented) in (type(actual), int, float), where


def inference_operations(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path, methods["post"])
        for path, methods in spec["paths"].items()
        if path.startswith("/v1/models/") and "post" in methods
    ]


def test_every_default_model_has_examples(spec: dict[str, Any]) -> None:
    operations = inference_operations(spec)
    assert len(operations) == 4
    for path, operation in operations:
        examples = operation["requestBody"]["content"]["application/json"]["examples"]
        assert {key.split("-")[0] for key in examples} == {"concrete", "digits"}, path
        names = next(p for p in operation["parameters"] if p["name"] == "name")
        assert {e["value"] for e in names["examples"].values()} == {"concrete", "digits"}
        answers = operation["responses"]["200"]["content"]["application/json"]["examples"]
        assert set(answers) == {"concrete", "digits"}, path
        for status in ("404", "422"):
            error = operation["responses"][status]["content"]["application/json"]["example"]
            assert set(error) == {"error", "request_id"}


def test_request_examples_answer_200_as_documented(
    defaults: TestClient, spec: dict[str, Any]
) -> None:
    for path, operation in inference_operations(spec):
        requests = operation["requestBody"]["content"]["application/json"]["examples"]
        answers = operation["responses"]["200"]["content"]["application/json"]["examples"]
        for key, example in requests.items():
            model = key.split("-")[0]
            url = path.replace("{name}", model).replace("{version}", "1")
            answer = defaults.post(url, json=example["value"])
            assert answer.status_code == 200, (url, key, answer.text)
            if key == model:  # the response example shows this request's answer
                same_shape(answers[model]["value"], answer.json(), f"{url} {key}")
