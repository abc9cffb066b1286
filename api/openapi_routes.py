"""The API's OpenAPI document: Den's worker reads, and worker and API key management."""

from __future__ import annotations

from typing import Any

from api.bodies import CreateApiKey, CreateWorker
from shared.contract.typeid import API_KEY, ORG, USER, WORKER
from shared.web.openapi import (
    BOOLEAN,
    DATE_TIME,
    STRING,
    TOO_LARGE,
    UNAVAILABLE,
    WORKER_INSTANCE,
    Schema,
    document,
    json_body,
    nullable,
    obj,
    operational_paths,
    path_id,
    ref,
    struct_schemas,
    typeid,
)

DEN_WORKER = {
    "id": typeid(WORKER),
    "orgId": typeid(ORG),
    "createdByUserId": nullable(typeid(USER)),
    "isMine": BOOLEAN,
    "name": STRING,
    "description": nullable(STRING),
    "destination": STRING,
    "status": STRING,
    "imageVersion": nullable(STRING),
    "workspacePath": nullable(STRING),
    "sandboxBackend": nullable(STRING),
    "lastHeartbeatAt": nullable(DATE_TIME),
    "lastActiveAt": nullable(DATE_TIME),
    "createdAt": DATE_TIME,
    "updatedAt": DATE_TIME,
}
# Additions to Den's worker: the merged hot fields and the liveness derived from them.
EXTRA_WORKER = {
    "liveness": {"type": "string", "enum": ["online", "stale", "offline", "never"]},
    "isActiveRecently": BOOLEAN,
    "openSessionCount": nullable({"type": "integer"}),
    "clockSkewMs": nullable({"type": "integer"}),
    "reportedStatus": nullable(STRING),
    "tasksProcessed": nullable({"type": "integer"}),
    "currentTaskId": nullable(STRING),
    "environmentName": nullable(STRING),
    "workerMetadata": nullable({"type": "object"}),
}

SCHEMAS: dict[str, Schema] = {
    "Worker": obj({**DEN_WORKER, **EXTRA_WORKER}, list(DEN_WORKER)),
    "WorkerInstance": WORKER_INSTANCE,
    "WorkerListResponse": obj(
        {
            "workers": {
                "type": "array",
                "items": {
                    "allOf": [ref("Worker"), obj({"instance": ref("WorkerInstance")}, ["instance"])]
                },
            },
            "nextCursor": {
                **nullable(STRING),
                "description": "Pass back as `cursor` for the next page.",
            },
        },
        ["workers"],
    ),
    "WorkerResponse": obj(
        {"worker": ref("Worker"), "instance": ref("WorkerInstance")}, ["worker", "instance"]
    ),
    "CreatedWorker": obj(
        {"worker": ref("Worker"), "heartbeatToken": {**STRING, "description": "Shown once."}},
        ["worker", "heartbeatToken"],
    ),
    "RotatedToken": obj(
        {"workerId": typeid(WORKER), "heartbeatToken": STRING, "tokenVersion": {"type": "integer"}},
        ["workerId", "heartbeatToken", "tokenVersion"],
    ),
    "ApiKey": obj(
        {
            "id": typeid(API_KEY),
            "name": STRING,
            "createdByUserId": nullable(typeid(USER)),
            "createdAt": DATE_TIME,
            "revokedAt": nullable(DATE_TIME),
        },
        ["id", "name", "createdByUserId", "createdAt", "revokedAt"],
    ),
    "ApiKeyList": obj({"apiKeys": {"type": "array", "items": ref("ApiKey")}}, ["apiKeys"]),
    "CreatedApiKey": obj(
        {"apiKey": ref("ApiKey"), "secret": {**STRING, "description": "Shown once."}},
        ["apiKey", "secret"],
    ),
    **struct_schemas(CreateWorker, CreateApiKey),
}

INVALID = ref("InvalidRequestError")
UNAUTHORIZED = json_body(ref("UnauthorizedError"), "No valid session token or API key.")
FORBIDDEN = json_body(ref("Error"), "API keys are managed with a session token only.")
NOT_FOUND = json_body(ref("NotFoundError"), "No such worker in the caller's organization.")
REGISTRY_PENDING = {
    "X-Registry-Sync": {
        "schema": {"type": "string", "const": "pending"},
        "description": "Saved in Postgres; Redis was unreachable and the flusher will catch up.",
    }
}
CALLER: list[Schema] = [{"bearerAuth": []}, {"denApiKey": []}]
SESSION: list[Schema] = [{"bearerAuth": []}]


def _op(tag: str, summary: str, op_id: str, responses: dict[str, Schema], **extra: Any) -> Schema:
    return {"tags": [tag], "summary": summary, "operationId": op_id, "security": CALLER,
            "responses": {**responses, "503": UNAVAILABLE}, **extra}  # fmt: skip


def _body(name: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}


WORKER_ID = [path_id(WORKER, "worker")]

PATHS: dict[str, Schema] = {
    "/v1/workers": {
        "get": _op("Workers", "List workers", "getV1Workers", {
            "200": json_body(ref("WorkerListResponse"),
                             "Newest first, each with its latest instance."),
            "400": json_body(INVALID, "Invalid limit or cursor."),
            "401": UNAUTHORIZED,
        }, parameters=[
            {"in": "query", "name": "limit", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 50, "default": 20}},
            {"in": "query", "name": "cursor", "required": False, "schema": STRING,
             "description": "The `nextCursor` of the previous page."},
        ]),
        "post": _op("Workers", "Create a worker", "postV1Workers", {
            "201": {**json_body(ref("CreatedWorker"), "Created, with its heartbeat token."),
                    "headers": REGISTRY_PENDING},
            "400": json_body(INVALID, "Invalid body."),
            "401": UNAUTHORIZED,
            "413": TOO_LARGE,
        }, requestBody=_body("CreateWorker")),
    },
    "/v1/workers/{id}": {
        "get": _op("Workers", "Get worker", "getV1WorkersById", {
            "200": json_body(ref("WorkerResponse"), "The worker and its latest instance."),
            "400": json_body(INVALID, "Invalid worker id."),
            "401": UNAUTHORIZED,
            "404": NOT_FOUND,
        }, parameters=WORKER_ID),
        "delete": _op("Workers", "Delete worker", "deleteV1WorkersById", {
            "204": {"description": "Deleted; ingest answers 404 for it from now on.",
                    "headers": REGISTRY_PENDING},
            "400": json_body(INVALID, "Invalid worker id."),
            "401": UNAUTHORIZED,
            "404": NOT_FOUND,
        }, parameters=WORKER_ID),
    },
    "/v1/workers/{id}/heartbeat-token": {
        "post": _op("Workers", "Rotate the heartbeat token", "postV1WorkersByIdHeartbeatToken", {
            "200": {**json_body(ref("RotatedToken"), "Every older token is refused from now."),
                    "headers": REGISTRY_PENDING},
            "400": json_body(INVALID, "Invalid worker id."),
            "401": UNAUTHORIZED,
            "404": NOT_FOUND,
        }, parameters=WORKER_ID),
    },
    "/v1/api-keys": {
        "get": _op("API Keys", "List API keys", "getV1ApiKeys", {
            "200": json_body(ref("ApiKeyList"), "The org's keys, never their secrets."),
            "401": UNAUTHORIZED,
            "403": FORBIDDEN,
        }, security=SESSION),
        "post": _op("API Keys", "Create an API key", "postV1ApiKeys", {
            "201": {**json_body(ref("CreatedApiKey"), "Created; the secret is shown once."),
                    "headers": REGISTRY_PENDING},
            "400": json_body(INVALID, "Invalid body."),
            "401": UNAUTHORIZED,
            "403": FORBIDDEN,
            "413": TOO_LARGE,
        }, requestBody=_body("CreateApiKey"), security=SESSION),
    },
    "/v1/api-keys/{id}": {
        "delete": _op("API Keys", "Revoke an API key", "deleteV1ApiKeysById", {
            "204": {"description": "Revoked.", "headers": REGISTRY_PENDING},
            "400": json_body(INVALID, "Invalid API key id."),
            "401": UNAUTHORIZED,
            "403": FORBIDDEN,
            "404": json_body(ref("NotFoundError"), "No such live key in the org."),
        }, parameters=[path_id(API_KEY, "API key")], security=SESSION),
    },
}  # fmt: skip

SECURITY: dict[str, Schema] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "A session token."},
    "denApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                  "description": "An organization API key."},
}  # fmt: skip


def api_document() -> Schema:
    return document(
        "Heartbeat API",
        "Den-compatible worker reads merged from Redis and Postgres, and management of "
        "workers, their heartbeat tokens and org API keys.",
        {**PATHS, **operational_paths("Postgres and Redis are reachable.")},
        SCHEMAS,
        SECURITY,
    )
