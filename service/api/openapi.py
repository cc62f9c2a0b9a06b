"""The OpenAPI document with examples for the models loaded now.

FastAPI builds the document once, but the models load after startup and change on reload; so
the app adds the models' examples to a copy of FastAPI's document, made again only when the
registry's table of models has changed (each (re)load and unload swaps in a new table).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from service.api.v1.examples import (
    SHIPPED_DIGESTS,
    SHIPPED_PREDICT_ANSWERS,
    SHIPPED_UNCERTAINTY_ANSWERS,
)
from service.api.v1.model_examples import ModelExamples, model_examples
from service.bundle.manifest import Manifest
from service.dataplane.registry import Table

__all__ = ["LiveExamplesApp", "with_model_examples"]

# The JSON API's per-model operations; inference ones are told apart by their last segment.
_PREFIX = "/v1/models/{name}"


class LiveExamplesApp(FastAPI):
    """A FastAPI app whose /openapi.json shows examples for every loaded model."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._documented: tuple[Table, dict[str, Any]] | None = None

    def openapi(self) -> dict[str, Any]:
        static = super().openapi()  # built and kept by FastAPI
        dataplane = getattr(self.state, "dataplane", None)
        if dataplane is None:  # before the lifespan starts: no models to show
            return static
        table = dataplane.registry.models()
        if self._documented is None or self._documented[0] is not table:
            max_samples = dataplane.settings.max_samples
            self._documented = (table, with_model_examples(static, table, max_samples))
        return self._documented[1]


def with_model_examples(static: dict[str, Any], table: Table, max_samples: int) -> dict[str, Any]:
    """A copy of `static` with request and answer examples of every model in `table` (its newest
    version) on the /v1 inference operations, and the model names on their `name` parameter."""
    examples = {
        name: _examples(versions[max(versions)].manifest, max_samples)
        for name, versions in table.items()
        if versions
    }
    document = copy.deepcopy(static)
    for path, methods in document.get("paths", {}).items():
        if not path.startswith(_PREFIX):
            continue
        for operation in methods.values():
            _name_examples(operation, examples)
            if path.endswith("/predict"):
                _body_examples(operation, {n: e.predict for n, e in examples.items()})
                _answer_examples(operation, {n: e.predict_answer for n, e in examples.items()})
            elif path.endswith("/uncertainty"):
                _body_examples(operation, {n: e.uncertainty for n, e in examples.items()})
                answers = {n: e.uncertainty_answer for n, e in examples.items()}
                _answer_examples(operation, answers)
    return document


def _examples(manifest: Manifest, max_samples: int) -> ModelExamples:
    generated = model_examples(manifest, max_samples)
    name = manifest.name
    # The shipped models' real answers, but only for the very bundle they were recorded from.
    if manifest.digest is not None and manifest.digest == SHIPPED_DIGESTS.get(name):
        return ModelExamples(
            generated.predict,
            generated.uncertainty,
            SHIPPED_PREDICT_ANSWERS[name],
            SHIPPED_UNCERTAINTY_ANSWERS[name],
        )
    return generated


def _name_examples(operation: dict[str, Any], examples: dict[str, ModelExamples]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "name" and parameter.get("in") == "path" and examples:
            parameter["examples"] = {name: {"summary": name, "value": name} for name in examples}


def _body_examples(operation: dict[str, Any], by_model: dict[str, dict[str, Any]]) -> None:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is not None and by_model:
        content["examples"] = {k: v for examples in by_model.values() for k, v in examples.items()}


def _answer_examples(operation: dict[str, Any], by_model: dict[str, Any]) -> None:
    content = operation.get("responses", {}).get("200", {}).get("content", {})
    if "application/json" in content and by_model:
        content["application/json"]["examples"] = dict(by_model)
