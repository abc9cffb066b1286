"""The ingest service's OpenAPI document: Den's and Kubiya's heartbeat routes."""

from __future__ import annotations

from shared.contract.typeid import WORKER
from shared.contract.wire import MAX_SAFE_INTEGER
from shared.web.openapi import (
    BOOLEAN,
    DATE_TIME,
    STRING,
    TOO_LARGE,
    UNAVAILABLE,
    Schema,
    document,
    json_body,
    nullable,
    obj,
    operational_paths,
    path_id,
    ref,
)

SCHEMAS: dict[str, Schema] = {
    "DenHeartbeat": obj(
        {
            "sentAt": DATE_TIME,
            "isActiveRecently": BOOLEAN,
            "lastActivityAt": nullable(DATE_TIME),
            "openSessionCount": {"type": "integer", "minimum": 0, "maximum": MAX_SAFE_INTEGER},
        },
        ["isActiveRecently"],
        description="Client times in the future are clamped to the server's receive time.",
    ),
    "WorkerHeartbeatResponse": obj(
        {
            "ok": {"type": "boolean", "const": True},
            "workerId": STRING,
            "isActiveRecently": BOOLEAN,
            "openSessionCount": nullable(
                {"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER}
            ),
            "lastHeartbeatAt": DATE_TIME,
            "lastActiveAt": nullable(DATE_TIME),
        },
        [
            "ok",
            "workerId",
            "isActiveRecently",
            "openSessionCount",
            "lastHeartbeatAt",
            "lastActiveAt",
        ],
    ),
    "WorkerHeartbeatRequest": obj(
        {
            "worker_id": STRING,
            "environment_name": STRING,
            "status": {"type": "string", "default": "active"},
            "tasks_processed": {"type": "integer", "default": 0},
            "current_task_id": nullable(STRING),
            "worker_metadata": {"type": "object", "additionalProperties": True, "default": {}},
        },
        ["worker_id", "environment_name"],
    ),
    "HTTPValidationError": obj(
        {"detail": {"type": "array", "items": ref("ValidationError")}}, ["detail"]
    ),
    "ValidationError": obj(
        {
            "loc": {"type": "array", "items": {"anyOf": [STRING, {"type": "integer"}]}},
            "msg": STRING,
            "type": STRING,
        },
        ["loc", "msg", "type"],
    ),
    "KubiyaError": obj({"detail": STRING}, ["detail"]),
}

DEN_HEARTBEAT: Schema = {
    "post": {
        "tags": ["Worker Activity"],
        "summary": "Record worker heartbeat (Den)",
        "description": "Acknowledged only once Redis holds the beat; Postgres follows in "
        "batches. `lastHeartbeatAt` and `lastActiveAt` never move backwards.",
        "operationId": "postV1WorkersByIdActivityHeartbeat",
        "security": [{"workerBearer": []}, {"denWorkerToken": []}],
        "parameters": [path_id(WORKER, "worker")],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ref("DenHeartbeat")}},
        },
        "responses": {
            "200": json_body(ref("WorkerHeartbeatResponse"), "Heartbeat recorded."),
            "400": json_body(ref("InvalidRequestError"), "Invalid worker id or body."),
            "401": json_body(ref("UnauthorizedError"), "Missing, invalid or revoked token."),
            "404": json_body(ref("NotFoundError"), "Unknown or deleted worker."),
            "413": TOO_LARGE,
            "503": UNAVAILABLE,
        },
    }
}

KUBIYA_ERROR = ref("KubiyaError")
KUBIYA_HEARTBEAT: Schema = {
    "post": {
        "tags": ["Worker Activity"],
        "summary": "Worker heartbeat (Kubiya)",
        "description": "Bearer is the worker's heartbeat token (its worker must be `worker_id`) "
        "or an org API key (the worker must belong to that org). Unlike Kubiya, a beat Redis "
        "did not take is answered 503, never 204.",
        "operationId": "worker_heartbeat_api_v1_workers_heartbeat_post",
        "security": [{"workerBearer": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ref("WorkerHeartbeatRequest")}},
        },
        "responses": {
            "204": {"description": "Heartbeat recorded."},
            "401": json_body(KUBIYA_ERROR, "Missing or invalid credentials."),
            "404": json_body(KUBIYA_ERROR, "Unknown worker, or not in the API key's org."),
            "413": json_body(KUBIYA_ERROR, "The request body is too large."),
            "422": json_body(ref("HTTPValidationError"), "Validation Error"),
            "503": {**json_body(KUBIYA_ERROR, "Redis is unreachable; retry later."),
                    "headers": UNAVAILABLE["headers"]},
        },
    }
}  # fmt: skip

SECURITY: dict[str, Schema] = {
    "workerBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A worker heartbeat token (`hbw.…`); on Kubiya's route also an org API "
        "key (`hbk_…`).",
    },
    "denWorkerToken": {"type": "apiKey", "in": "header", "name": "x-den-worker-heartbeat-token"},
}


def ingest_document() -> Schema:
    paths = {
        "/v1/workers/{id}/activity-heartbeat": DEN_HEARTBEAT,
        "/api/v1/workers/heartbeat": KUBIYA_HEARTBEAT,
        **operational_paths("Redis is reachable."),
    }
    return document(
        "Heartbeat ingest",
        "Worker heartbeats, Den- and Kubiya-compatible, written to Redis.",
        paths,
        SCHEMAS,
        SECURITY,
    )
