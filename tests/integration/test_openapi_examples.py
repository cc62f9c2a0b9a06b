"""Every example in /docs works: each request example answers 200 on the default models and on a
freshly built one, and each response example has the shape of the real answer."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.v1.examples import SHIPPED_DIGESTS
from tests.factories import make_bundle
from tests.integration.conftest import make_client

MODELS = Path(__file__).resolve().parents[2] / "models"
# A model nobody wrote examples for: its examples come from its manifest alone.
FRESH = "houses"
LOADED = {"concrete", "digits", FRESH}


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    models = tmp_path_factory.mktemp("models")
    for name in ("concrete", "digits"):
        shutil.copytree(MODELS / name, models / name)
    make_bundle(models, FRESH, n_features=4)
    yield from make_client(models)


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


def test_every_loaded_model_has_examples(spec: dict[str, Any]) -> None:
    operations = inference_operations(spec)
    assert len(operations) == 4
    for path, operation in operations:
        examples = operation["requestBody"]["content"]["application/json"]["examples"]
        assert {key.split("-")[0] for key in examples} == LOADED, path
        names = next(p for p in operation["parameters"] if p["name"] == "name")
        assert {e["value"] for e in names["examples"].values()} == LOADED
        answers = operation["responses"]["200"]["content"]["application/json"]["examples"]
        assert set(answers) == LOADED, path
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


def test_the_document_follows_a_reload(tmp_path: Path) -> None:
    make_bundle(tmp_path, "toy")
    for client in make_client(tmp_path):
        before = client.get("/openapi.json").json()
        assert client.get("/openapi.json").json() == before  # kept while the models stay
        make_bundle(tmp_path, "irises", task="classification")
        client.app.state.dataplane.registry.reload()  # as /admin/reload or SIGHUP would
        after = client.get("/openapi.json").json()
        for path, operation in inference_operations(after):
            names = next(p for p in operation["parameters"] if p["name"] == "name")
            assert set(names["examples"]) == {"toy", "irises"}, path
            example = operation["requestBody"]["content"]["application/json"]["examples"]["irises"]
            url = path.replace("{name}", "irises").replace("{version}", "1")
            answer = client.post(url, json=example["value"])
            assert answer.status_code == 200, (url, answer.text)
            documented = operation["responses"]["200"]["content"]["application/json"]["examples"]
            same_shape(documented["irises"]["value"], answer.json(), url)


def test_the_recorded_answers_name_the_shipped_bundles() -> None:
    # Retraining a default model changes its digest: then its recorded answers must be
    # recorded again (or they stop being shown), never shown for a different bundle.
    for name, digest in SHIPPED_DIGESTS.items():
        manifest = json.loads((MODELS / name / "1" / "manifest.json").read_text())
        assert manifest["digest"] == digest, name
