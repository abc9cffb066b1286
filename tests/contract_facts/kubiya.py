"""Kubiya's worker heartbeat route, as published: a JSON body in, 204 with no body out, and
the framework's 422 validation error for a body it cannot accept."""

from __future__ import annotations

from typing import Any

from tests.contract_facts.schema_parts import (
    STRING,
    Schema,
    array,
    document,
    integer,
    json_body,
    nullable,
    obj,
    one_of_types,
    operation,
    ref,
)

HEARTBEAT_PATH = "/api/v1/workers/heartbeat"


def _with_default(schema: Schema, default: Any) -> Schema:
    return {**schema, "default": default}


HEARTBEAT_REQUEST = obj(
    {
        "worker_id": STRING,
        "environment_name": STRING,
        "status": _with_default(STRING, "active"),
        "tasks_processed": integer(default=0),
        "current_task_id": nullable(STRING),
        "worker_metadata": {"type": "object", "additionalProperties": True, "default": {}},
    },
    required=["worker_id", "environment_name"],
)

VALIDATION_ERROR = obj(
    {"loc": array(one_of_types("string", "integer")), "msg": STRING, "type": STRING},
    required=["loc", "msg", "type"],
)
# `detail` is described but not required.
HTTP_VALIDATION_ERROR = obj({"detail": array(ref("ValidationError"))})

SCHEMAS: dict[str, Schema] = {
    "WorkerHeartbeatRequest": HEARTBEAT_REQUEST,
    "ValidationError": VALIDATION_ERROR,
    "HTTPValidationError": HTTP_VALIDATION_ERROR,
}

HEARTBEAT = operation(
    "worker_heartbeat_api_v1_workers_heartbeat_post",
    {204: None, 422: ref("HTTPValidationError")},
    body=json_body(ref("WorkerHeartbeatRequest")),
)


def heartbeat_document() -> Schema:
    return document("Kubiya: worker heartbeat", HEARTBEAT_PATH, "post", HEARTBEAT, SCHEMAS)
