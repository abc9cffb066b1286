"""The Den response schemas, read from the published contracts at test time."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from tests.contracts import seed_document

_SEEDS = {
    "WorkerListResponse": "003_",
    "InvalidRequestError": "003_",
    "UnauthorizedError": "003_",
    "WorkerResponse": "004_",
    "NotFoundError": "004_",
}


def den_validator(schema_name: str) -> Draft202012Validator:
    """A validator for `#/components/schemas/<schema_name>` of the seed that defines it."""
    document = seed_document(_SEEDS[schema_name])
    # Local `#/components/...` refs resolve against the root, so the components ride along.
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def assert_valid(schema_name: str, body: Any) -> None:
    errors = sorted(den_validator(schema_name).iter_errors(body), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
