"""The published OpenAPI contracts (seeds beside the repository) as JSON Schemas for assertions."""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import seeds_dir

DEN_HEARTBEAT = "000_"
KUBIYA_HEARTBEAT = "002_"


@functools.cache
def _document(prefix: str) -> dict[str, Any]:
    folder = seeds_dir()
    matches = sorted(folder.glob(f"{prefix}*.txt")) if folder.is_dir() else []
    if not matches:
        pytest.skip(f"the contract seeds are not available at {folder}")
    text = matches[0].read_text(encoding="utf-8")
    start = text.index("````yaml")
    body_start = text.index("\n", start) + 1
    end = text.index("````", body_start)
    document: dict[str, Any] = yaml.safe_load(text[body_start:end])
    return document


def _inline(node: Any, schemas: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _inline(schemas[ref.rsplit("/", 1)[1]], schemas)
        return {key: _inline(value, schemas) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, schemas) for item in node]
    return node


def component(prefix: str, name: str) -> dict[str, Any]:
    """A schema of `components/schemas` with its references resolved."""
    schemas = _document(prefix)["components"]["schemas"]
    resolved: dict[str, Any] = _inline(schemas[name], schemas)
    return resolved


def _operation(prefix: str) -> dict[str, Any]:
    paths = _document(prefix)["paths"]
    (path_item,) = paths.values()
    operation: dict[str, Any] = path_item["post"]
    return operation


def request_body(prefix: str) -> dict[str, Any]:
    schemas = _document(prefix)["components"]["schemas"]
    schema = _operation(prefix)["requestBody"]["content"]["application/json"]["schema"]
    resolved: dict[str, Any] = _inline(schema, schemas)
    return resolved


def response(prefix: str, status: int) -> dict[str, Any]:
    schemas = _document(prefix)["components"]["schemas"]
    schema = _operation(prefix)["responses"][str(status)]["content"]["application/json"]["schema"]
    resolved: dict[str, Any] = _inline(schema, schemas)
    return resolved


def path_id(prefix: str) -> dict[str, Any]:
    (parameter,) = _operation(prefix)["parameters"]
    schema: dict[str, Any] = parameter["schema"]
    return schema


def assert_matches(instance: object, schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(instance)


def is_valid(instance: object, schema: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(instance)
