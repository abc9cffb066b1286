"""OpenAPI 3.1 documents generated from the msgspec Structs the routes decode and encode, plus
a small table of routes (`Operation`) per service.

Component schemas come from `msgspec.json.schema_components`, so a field, a bound or an error
body is written once, in its Struct; this module only places them into paths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from shared.contract.wire import Error, schema_hook

Schema = dict[str, Any]
VERSION = "0.1.0"
REF = "#/components/schemas/{name}"


class HealthStatus(msgspec.Struct, omit_defaults=True):
    status: str
    message: str | msgspec.UnsetType = msgspec.UNSET


@dataclass(frozen=True)
class Reply:
    """One response of an operation: its body's type (None: no body) and headers."""

    description: str
    body: Any = None
    headers: Schema = field(default_factory=dict)
    media_type: str = "application/json"


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" or "query"
    type: Any
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    tag: str
    summary: str
    replies: dict[int, Reply]
    operation_id: str | None = None
    description: str = ""
    params: Sequence[Param] = ()
    body: Any = None  # the request body's type
    security: list[Schema] | None = None  # None: the document's default


RETRY_AFTER: Schema = {
    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."},
}
UNAVAILABLE = Reply("A store is unreachable; nothing was changed. Retry later.", Error, RETRY_AFTER)
TOO_LARGE = Reply("The request body exceeds HB_MAX_BODY_BYTES.", Error)


def operational_routes(ready_description: str) -> list[Operation]:
    """/health, /ready, /metrics, /openapi.json and /docs, the same on every service."""
    text = Annotated[str, msgspec.Meta()]
    document = Annotated[dict[str, Any], msgspec.Meta()]
    return [
        Operation("get", "/health", "System", "Liveness of the process",
                  {200: Reply("The process is up.", HealthStatus)}, security=[]),
        Operation("get", "/ready", "System", "Readiness: the stores it needs are reachable", {
            200: Reply(ready_description, HealthStatus),
            503: Reply("A store is unreachable.", HealthStatus, RETRY_AFTER),
        }, security=[]),
        Operation("get", "/metrics", "System", "Prometheus metrics", {
            200: Reply("Metrics in the Prometheus text exposition format.", text,
                       media_type="text/plain"),
        }, security=[]),
        Operation("get", "/openapi.json", "System", "This document", {
            200: Reply("The OpenAPI 3.1 document of this service.", document),
        }, security=[]),
        Operation("get", "/docs", "System", "This document, browsable (Swagger UI)", {
            200: Reply("An HTML page rendering this document; it loads its scripts and styles "
                       "from this service only.", text, media_type="text/html"),
        }, security=[]),
    ]  # fmt: skip


def build_document(
    title: str,
    description: str,
    operations: Sequence[Operation],
    security_schemes: Schema,
) -> Schema:
    """The service's document: `operations` with every type they name as a component."""
    types: list[Any] = []
    for op in operations:
        types += [p.type for p in op.params]
        types += [op.body] if op.body is not None else []
        types += [r.body for r in op.replies.values() if r.body is not None]
    schemas, components = msgspec.json.schema_components(
        types, schema_hook=schema_hook, ref_template=REF
    )
    schema_of = dict(zip(map(_key, types), schemas, strict=True))
    _typed_enums(components)

    paths: dict[str, Schema] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, schema_of)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "description": description, "version": VERSION},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": security_schemes},
    }


_JSON_TYPES = {bool: "boolean", str: "string", int: "integer"}


def _typed_enums(node: Any) -> None:
    """msgspec leaves an enum's type out and writes a one-value Literal as `{"enum": [v]}`;
    Den's contract (and most readers) spell them `{"type": ..., "enum"|"const": ...}`."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and "type" not in node:
            kinds = {_JSON_TYPES[type(v)] for v in enum}
            if len(kinds) == 1:
                node["type"] = kinds.pop()
                if len(enum) == 1:
                    node["const"] = node.pop("enum")[0]
        for value in node.values():
            _typed_enums(value)
    elif isinstance(node, list):
        for value in node:
            _typed_enums(value)


def _key(kind: Any) -> str:
    return repr(kind)  # Annotated types are not all hashable; their repr tells them apart


def _operation(op: Operation, schema_of: dict[str, Schema]) -> Schema:
    out: Schema = {"tags": [op.tag], "summary": op.summary}
    if op.description:
        out["description"] = op.description
    if op.operation_id:
        out["operationId"] = op.operation_id
    if op.security is not None:
        out["security"] = op.security
    if op.params:
        out["parameters"] = [_param(p, schema_of[_key(p.type)]) for p in op.params]
    if op.body is not None:
        content = {"application/json": {"schema": schema_of[_key(op.body)]}}
        out["requestBody"] = {"required": True, "content": content}
    responses: Schema = {}
    for status, reply in sorted(op.replies.items()):
        response: Schema = {"description": reply.description}
        if reply.body is not None:
            response["content"] = {reply.media_type: {"schema": schema_of[_key(reply.body)]}}
        if reply.headers:
            response["headers"] = reply.headers
        responses[str(status)] = response
    out["responses"] = responses
    return out


def _param(param: Param, schema: Schema) -> Schema:
    out: Schema = {"in": param.where, "name": param.name, "required": param.required or
                   param.where == "path", "schema": schema}  # fmt: skip
    if param.description:
        out["description"] = param.description
    return out


def openapi_endpoint(build: Callable[[], Schema]) -> Callable[[Request], Any]:
    """A route serving the document, encoded once on first request."""
    encoded: list[bytes] = []

    async def openapi_json(request: Request) -> Response:
        if not encoded:
            encoded.append(msgspec.json.encode(build()))
        return Response(encoded[0], media_type="application/json")

    return openapi_json
