"""The published heartbeat contracts (tests/contract_facts) as JSON Schemas for assertions."""

from __future__ import annotations

from typing import Any

import jsonschema

from tests.contracts import contract_document

DEN_HEARTBEAT = "den_heartbeat"
KUBIYA_HEARTBEAT = "kubiya_heartbeat"


def _inline(node: Any, schemas: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _inline(schemas[ref.rsplit("/", 1)[1]], schemas)
        return {key: _inline(value, schemas) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, schemas) for item in node]
    return node


def component(contract: str, name: str) -> dict[str, Any]:
    """A schema of `components/schemas` with its references resolved."""
    schemas = contract_document(contract)["components"]["schemas"]
    resolved: dict[str, Any] = _inline(schemas[name], schemas)
    return resolved


def _operation(contract: str) -> dict[str, Any]:
    paths = contract_document(contract)["paths"]
    (path_item,) = paths.values()
    operation: dict[str, Any] = path_item["post"]
    return operation


def request_body(contract: str) -> dict[str, Any]:
    schemas = contract_document(contract)["components"]["schemas"]
    schema = _operation(contract)["requestBody"]["content"]["application/json"]["schema"]
    resolved: dict[str, Any] = _inline(schema, schemas)
    return resolved


def response(contract: str, status: int) -> dict[str, Any]:
    schemas = contract_document(contract)["components"]["schemas"]
    schema = _operation(contract)["responses"][str(status)]["content"]["application/json"]["schema"]
    resolved: dict[str, Any] = _inline(schema, schemas)
    return resolved


def path_id(contract: str) -> dict[str, Any]:
    (parameter,) = _operation(contract)["parameters"]
    schema: dict[str, Any] = parameter["schema"]
    return schema


def assert_matches(instance: object, schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(instance)


def is_valid(instance: object, schema: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(instance)
