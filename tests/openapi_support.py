"""Checking real responses against a service's own OpenAPI document, and the document against
the published contracts (kept in tests/contract_facts)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from tests.contracts import contract_document


def response_validator(document: dict[str, Any], path: str, method: str, status: int):
    operation = document["paths"][path][method]
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    # Local `#/components/...` refs resolve against the root, so the components ride along.
    return Draft202012Validator({**schema, "components": document["components"]})


def assert_conforms(
    document: dict[str, Any], path: str, method: str, status: int, body: Any
) -> None:
    validator = response_validator(document, path, method, status)
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def _resolve(node: Any, document: dict[str, Any]) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = document["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def assert_operation_covers_contract(ours: dict[str, Any], contract: str) -> None:
    """Same path, method, parameters (ours may add optional ones), request fields and status
    codes as the contract, and every response field the contract requires is required by ours.
    `contract` names a published contract (a key of `tests.contract_facts.DOCUMENTS`)."""
    theirs = contract_document(contract)
    ((path, item),) = theirs["paths"].items()
    ((method, their_op),) = item.items()
    assert path in ours["paths"] and method in ours["paths"][path], f"{method} {path}"
    our_op = ours["paths"][path][method]

    def params(op: dict[str, Any], doc: dict[str, Any]) -> dict[tuple[str, str], Any]:
        return {(p["in"], p["name"]): (p.get("required", False), p["schema"].get("type"))
                for p in op.get("parameters", [])}  # fmt: skip

    ours_params, their_params = params(our_op, ours), params(their_op, theirs)
    assert their_params.items() <= ours_params.items()
    assert not any(
        required
        for required, _ in (ours_params[k] for k in ours_params.keys() - their_params.keys())
    ), "additions are optional"
    if "requestBody" in their_op:
        their_body = _resolve(
            their_op["requestBody"]["content"]["application/json"]["schema"], theirs
        )
        our_body = _resolve(our_op["requestBody"]["content"]["application/json"]["schema"], ours)
        assert our_op["requestBody"]["required"] == their_op["requestBody"]["required"]
        assert set(our_body["properties"]) == set(their_body["properties"])
        assert set(our_body.get("required", [])) == set(their_body.get("required", []))
    assert set(their_op["responses"]) <= set(our_op["responses"])
    for status, response in their_op["responses"].items():
        if "content" not in response:
            assert "content" not in our_op["responses"][status]
            continue
        their_schema = _resolve(response["content"]["application/json"]["schema"], theirs)
        our_schema = _resolve(
            our_op["responses"][status]["content"]["application/json"]["schema"], ours
        )
        assert set(their_schema.get("required", [])) <= set(our_schema.get("required", [])), status


def fuzz(schema: Any, prepare: Any, max_examples: int = 20) -> None:
    """Every operation, with schema-valid and schema-violating inputs (deterministic, bounded):
    no 5xx, and every response documented and matching its schema. `prepare(case)` may point a
    case at real data and returns the keyword arguments of the call (e.g. headers)."""
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]  # fmt: skip
    for result in schema.get_all_operations():
        operation = result.ok()
        spec = schema.raw_schema["paths"][operation.path][operation.method.lower()]
        # An operation without inputs has no invalid request to make.
        has_inputs = "parameters" in spec or "requestBody" in spec
        modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * has_inputs
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=max_examples, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            def check(case: Any) -> None:
                case.call_and_validate(checks=checks, **prepare(case))

            check()
