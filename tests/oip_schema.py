"""Validate /v2 bodies against the Open Inference Protocol's OpenAPI schema (tests/data/oip)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["SCHEMA_FILE", "oip_validator"]

SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "oip" / "open_inference_rest.yaml"


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects -> JSON Schema: drop `x-*` extensions and `example(s)`, and
    turn `nullable: true` into a union with null (the only 3.0-specific keywords in the file)."""
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {
        key: _to_json_schema(value)
        for key, value in node.items()
        if not key.startswith("x-") and key not in ("example", "nullable")
    }
    if node.get("nullable") is True and "type" in converted:
        converted["type"] = [converted["type"], "null"]
    return converted


@cache
def _components() -> dict[str, Any]:
    document = yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8"))
    schemas: dict[str, Any] = _to_json_schema(document["components"]["schemas"])
    return schemas


def oip_validator(component: str) -> jsonschema.Draft7Validator:
    """A validator for one component (e.g. `inference_request`); its `$ref`s resolve within the
    converted components."""
    components = _components()
    if component not in components:
        raise KeyError(f"no component {component!r} in {SCHEMA_FILE.name}")
    root = {"$ref": f"#/components/schemas/{component}", "components": {"schemas": components}}
    jsonschema.Draft7Validator.check_schema(root)
    return jsonschema.Draft7Validator(root)
