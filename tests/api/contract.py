"""The Den response schemas, from the published contracts kept in tests/contract_facts."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from tests.contracts import contract_document

# The contract that defines each schema the tests check bodies against.
_DEFINED_IN = {
    "WorkerListResponse": "den_list_workers",
    "InvalidRequestError": "den_list_workers",
    "UnauthorizedError": "den_list_workers",
    "WorkerResponse": "den_get_worker",
    "NotFoundError": "den_get_worker",
}


def den_validator(schema_name: str) -> Draft202012Validator:
    """A validator for `#/components/schemas/<schema_name>` of the contract that defines it."""
    document = contract_document(_DEFINED_IN[schema_name])
    # Local `#/components/...` refs resolve against the root, so the components ride along.
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def assert_valid(schema_name: str, body: Any) -> None:
    errors = sorted(den_validator(schema_name).iter_errors(body), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
