"""Small builders for the reference schemas, so each contract reads as a list of facts.

Everything here returns plain dicts in the JSON Schema 2020-12 / OpenAPI 3.1 vocabulary."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

Schema = dict[str, Any]

JSON = "application/json"
MAX_SAFE_INTEGER = 2**53 - 1  # the largest integer a JavaScript number holds exactly

# ---------------------------------------------------------------------------------------------
# The calendar-aware UTC timestamp both Den contracts use: `YYYY-MM-DDTHH:MM[:SS[.fraction]]Z`.


def _any(*choices: str) -> str:
    return "(?:" + "|".join(choices) + ")"


# Years divisible by 4 and not by 100, or divisible by 400 (Gregorian leap years).
_FOURTH_YEAR_ENDING = _any("0[48]", "[2468][048]", "[13579][26]")
_LEAP_YEAR = _any(r"\d\d" + _FOURTH_YEAR_ENDING, _any("[02468][048]", "[13579][26]") + "00")

_DAY_1_TO_28 = _any("0[1-9]", r"1\d", "2[0-8]")
_DAY_1_TO_30 = _any("0[1-9]", r"[12]\d", "30")
_DAY_1_TO_31 = _any("0[1-9]", r"[12]\d", "3[01]")
_LONG_MONTH = _any("0[13578]", "1[02]")
_SHORT_MONTH = _any("0[469]", "11")

_DATE = _any(
    _LEAP_YEAR + "-02-29",
    r"\d{4}-"
    + _any(
        _LONG_MONTH + "-" + _DAY_1_TO_31,
        _SHORT_MONTH + "-" + _DAY_1_TO_30,
        "02-" + _DAY_1_TO_28,
    ),
)
_HOUR = _any(r"[01]\d", "2[0-3]")
_MINUTE_OR_SECOND = r"[0-5]\d"
_FRACTION = r"(?:\.\d+)?"
_CLOCK = _HOUR + ":" + _MINUTE_OR_SECOND + "(?::" + _MINUTE_OR_SECOND + _FRACTION + ")?Z"

DATE_TIME_PATTERN = "^" + _DATE + "T" + _CLOCK + "$"

DATE_TIME: Schema = {"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN}

# ---------------------------------------------------------------------------------------------
# Value schemas.

STRING: Schema = {"type": "string"}
BOOLEAN: Schema = {"type": "boolean"}
NULL: Schema = {"type": "null"}

TYPEID_SUFFIX_LENGTH = 26  # Crockford base32


def typeid_string(prefix: str) -> Schema:
    """A TypeID as the contracts publish it: `<prefix>_` then a 26-character suffix."""
    length = len(prefix) + 1 + TYPEID_SUFFIX_LENGTH
    return {
        "type": "string",
        "format": "typeid",
        "minLength": length,
        "maxLength": length,
        "pattern": f"^{prefix}_.*",
    }


def integer(minimum: int | None = None, maximum: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "integer", **extra}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def constant(value: str | bool) -> Schema:
    kind = "boolean" if isinstance(value, bool) else "string"
    return {"type": kind, "const": value}


def nullable(schema: Schema) -> Schema:
    """`schema` or JSON null, spelled the way OpenAPI 3.1 generators spell it."""
    return {"anyOf": [schema, NULL]}


def one_of_types(*types: str) -> Schema:
    return {"anyOf": [{"type": name} for name in types]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def obj(
    properties: dict[str, Schema], required: list[str] | tuple[str, ...] = (), **extra: Any
) -> Schema:
    """An object with `properties`; names in `required` must be present. Other keys pass
    unless `extra` says otherwise (none of the published objects forbid them)."""
    unknown = set(required) - set(properties)
    assert not unknown, f"required but not described: {sorted(unknown)}"
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def all_required(properties: dict[str, Schema], **extra: Any) -> Schema:
    """An object whose every described property must be present (nullable ones as null)."""
    return obj(properties, list(properties), **extra)


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


# ---------------------------------------------------------------------------------------------
# OpenAPI pieces.


def path_parameter(name: str, schema: Schema) -> Schema:
    return {"in": "path", "name": name, "required": True, "schema": schema}


def query_parameter(name: str, schema: Schema, required: bool = False) -> Schema:
    return {"in": "query", "name": name, "required": required, "schema": schema}


def json_body(schema: Schema, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def responses(table: dict[int, Schema | None]) -> dict[str, Schema]:
    """Status code to body schema; `None` is an answer without a body."""
    answers: dict[str, Schema] = {}
    for status, schema in table.items():
        answer: Schema = {"description": HTTPStatus(status).phrase}
        if schema is not None:
            answer["content"] = {JSON: {"schema": schema}}
        answers[str(status)] = answer
    return answers


def operation(
    operation_id: str,
    answers: dict[int, Schema | None],
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
) -> Schema:
    op: Schema = {"operationId": operation_id}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    op["responses"] = responses(answers)
    return op


def _references(node: Any) -> set[str]:
    """The component names `node` points at with `$ref`, at any depth."""
    found: set[str] = set()
    if isinstance(node, dict):
        target = node.get("$ref")
        if isinstance(target, str):
            found.add(target.rsplit("/", 1)[1])
        children = list(node.values())
    elif isinstance(node, list):
        children = node
    else:
        children = []
    for child in children:
        found |= _references(child)
    return found


def document(title: str, path: str, method: str, op: Schema, schemas: dict[str, Schema]) -> Schema:
    """A one-operation OpenAPI 3.1 document whose components are exactly the schemas the
    operation reaches, directly or through other schemas."""
    reached: set[str] = set()
    pending = _references(op)
    while pending:
        name = pending.pop()
        if name not in reached:
            reached.add(name)
            pending |= _references(schemas[name])
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "reference"},
        "paths": {path: {method: op}},
        "components": {"schemas": {name: schemas[name] for name in sorted(reached)}},
    }
