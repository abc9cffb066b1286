"""The served OpenAPI documents are generated from the Structs and are valid OpenAPI 3.1."""

from __future__ import annotations

import msgspec
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from api.openapi_routes import api_document
from ingest.openapi_routes import ingest_document
from shared.contract.wire import (
    DenHeartbeat,
    InvalidRequestError,
    WorkerHeartbeatRequest,
    schema_hook,
)


@pytest.mark.parametrize("build", [ingest_document, api_document])
def test_each_service_document_is_valid_openapi_3_1(build) -> None:
    validate(build(), cls=OpenAPIV31SpecValidator)


def test_request_bodies_are_the_structs_the_routes_decode_with() -> None:
    document = ingest_document()
    schemas = document["components"]["schemas"]
    _, components = msgspec.json.schema_components(
        [DenHeartbeat, WorkerHeartbeatRequest], schema_hook=schema_hook
    )
    assert (
        schemas["WorkerHeartbeatRequest"]["properties"]
        == (components["WorkerHeartbeatRequest"]["properties"])
    )
    assert schemas["DenHeartbeat"]["required"] == ["isActiveRecently"]


def test_whole_number_session_counts_are_documented_as_integers() -> None:
    session_count = ingest_document()["components"]["schemas"]["DenHeartbeat"]["properties"][
        "openSessionCount"
    ]
    assert session_count == {"type": "integer", "minimum": 0, "maximum": 9007199254740991}


def test_one_value_literals_are_documented_as_typed_constants() -> None:
    schemas = ingest_document()["components"]["schemas"]
    assert schemas["InvalidRequestError"]["properties"]["error"] == {
        "type": "string",
        "const": "invalid_request",
    }
    assert schemas["WorkerHeartbeatResponse"]["properties"]["ok"] == {
        "type": "boolean",
        "const": True,
    }
    assert InvalidRequestError.__struct_fields__ == ("error", "details")


def test_liveness_is_a_typed_enum() -> None:
    liveness = api_document()["components"]["schemas"]["Liveness"]
    assert liveness["type"] == "string"
    assert set(liveness["enum"]) == {"online", "stale", "offline", "never"}
