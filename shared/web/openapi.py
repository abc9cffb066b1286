"""OpenAPI 3.1 building blocks: the schemas both services use, and the document around them.

Schemas are plain dicts built here (management bodies come from their msgspec Structs), so the
description lives next to the code it describes. Each service assembles its own document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from shared.contract.times import DATE_TIME_PATTERN
from shared.contract.typeid import ALPHABET, SUFFIX_LEN

Schema = dict[str, Any]
VERSION = "0.1.0"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def typeid(prefix: str) -> Schema:
    suffix = f"[0-7][{ALPHABET}]{{{SUFFIX_LEN - 1}}}"
    return {
        "type": "string",
        "format": "typeid",
        "minLength": len(prefix) + 1 + SUFFIX_LEN,
        "maxLength": len(prefix) + 1 + SUFFIX_LEN,
        "pattern": f"^{prefix}_{suffix}$",
        "description": f"TypeID with '{prefix}_' prefix and a 26-character base32 suffix.",
    }


DATE_TIME: Schema = {"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN}
STRING: Schema = {"type": "string"}
BOOLEAN: Schema = {"type": "boolean"}


def obj(properties: dict[str, Schema], required: Sequence[str] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def json_body(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def path_id(prefix: str, what: str) -> Schema:
    return {"in": "path", "name": "id", "required": True, "schema": typeid(prefix),
            "description": f"The {what}'s id."}  # fmt: skip


def struct_schemas(*types: type) -> dict[str, Schema]:
    """Component schemas of msgspec Structs, the same types the routes decode with."""
    _, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    return components


# Den's error bodies, and ours for the failures Den's contract does not cover.
ERROR_SCHEMAS: dict[str, Schema] = {
    "InvalidRequestError": obj(
        {
            "error": {"type": "string", "const": "invalid_request"},
            "details": {
                "type": "array",
                "items": obj(
                    {
                        "message": STRING,
                        "path": {"type": "array", "items": {"anyOf": [STRING, {"type": "number"}]}},
                    },
                    ["message"],
                ),
            },
        },
        ["error", "details"],
    ),
    "UnauthorizedError": obj({"error": {"type": "string", "const": "unauthorized"}}, ["error"]),
    "NotFoundError": obj({"error": STRING, "message": STRING}, ["error"]),
    "Error": obj({"error": STRING, "message": STRING}, ["error", "message"]),
    "HealthStatus": obj({"status": STRING, "message": STRING}, ["status"]),
}

UNAVAILABLE = {
    **json_body(ref("Error"), "A store is unreachable; nothing was changed. Retry later."),
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}},
}
TOO_LARGE = json_body(ref("Error"), "The request body exceeds HB_MAX_BODY_BYTES.")

WORKER_INSTANCE: Schema = nullable(
    obj(
        {"provider": STRING, "region": nullable(STRING), "url": nullable(STRING),
         "status": STRING, "createdAt": DATE_TIME, "updatedAt": DATE_TIME},
        ["provider", "region", "url", "status", "createdAt", "updatedAt"],
    )
)  # fmt: skip


def operational_paths(ready_description: str) -> dict[str, Schema]:
    def get(summary: str, responses: dict[str, Schema]) -> Schema:
        return {"get": {"tags": ["System"], "summary": summary, "security": [],
                        "responses": responses}}  # fmt: skip

    return {
        "/health": get("Liveness of the process",
                       {"200": json_body(ref("HealthStatus"), "The process is up.")}),
        "/ready": get("Readiness: the stores it needs are reachable", {
            "200": json_body(ref("HealthStatus"), ready_description),
            "503": {**json_body(ref("HealthStatus"), "A store is unreachable."),
                    "headers": UNAVAILABLE["headers"]},
        }),
        "/metrics": get("Prometheus metrics", {"200": {
            "description": "Metrics in the Prometheus text exposition format.",
            "content": {"text/plain": {"schema": STRING}},
        }}),
        "/openapi.json": get("This document", {"200": {
            "description": "The OpenAPI 3.1 document of this service.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }}),
    }  # fmt: skip


def document(
    title: str,
    description: str,
    paths: dict[str, Schema],
    schemas: dict[str, Schema],
    security_schemes: dict[str, Schema],
) -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "description": description, "version": VERSION},
        "paths": paths,
        "components": {
            "schemas": {**ERROR_SCHEMAS, **schemas},
            "securitySchemes": security_schemes,
        },
    }


def openapi_endpoint(build: Callable[[], Schema]) -> Callable[[Request], Any]:
    """A route serving the document, encoded once on first request."""
    encoded: list[bytes] = []

    async def openapi_json(request: Request) -> Response:
        if not encoded:
            encoded.append(msgspec.json.encode(build()))
        return Response(encoded[0], media_type="application/json")

    return openapi_json
