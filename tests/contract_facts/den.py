"""Den's worker routes, as published: the activity heartbeat, the worker list and one worker.

Only what a request or an answer is checked against is written down: paths, methods,
operation ids, parameters, bodies, status codes and the schema of each answer."""

from __future__ import annotations

from tests.contract_facts.schema_parts import (
    BOOLEAN,
    DATE_TIME,
    MAX_SAFE_INTEGER,
    STRING,
    Schema,
    all_required,
    array,
    constant,
    document,
    integer,
    json_body,
    nullable,
    obj,
    one_of_types,
    operation,
    path_parameter,
    query_parameter,
    ref,
    typeid_string,
)

WORKER_ID = typeid_string("wrk")
ORG_ID = typeid_string("org")
USER_ID = typeid_string("usr")

HEARTBEAT_PATH = "/v1/workers/{id}/activity-heartbeat"
LIST_PATH = "/v1/workers"
GET_PATH = "/v1/workers/{id}"

LIST_LIMIT = {"minimum": 1, "maximum": 50, "default": 20}

# --- error bodies (shared by every Den route) ------------------------------------------------

_ISSUE = obj(
    {"message": STRING, "path": array(one_of_types("string", "number"))},
    required=["message"],
    additionalProperties={},
)

INVALID_REQUEST_ERROR = obj(
    {"error": constant("invalid_request"), "details": array(_ISSUE)},
    required=["error", "details"],
)
UNAUTHORIZED_ERROR = obj({"error": constant("unauthorized")}, required=["error"])
NOT_FOUND_ERROR = obj({"error": STRING, "message": STRING}, required=["error"])

# --- the heartbeat ---------------------------------------------------------------------------

HEARTBEAT_REQUEST = obj(
    {
        "sentAt": DATE_TIME,
        "isActiveRecently": BOOLEAN,
        "lastActivityAt": nullable(DATE_TIME),
        "openSessionCount": integer(0, MAX_SAFE_INTEGER),
    },
    required=["isActiveRecently"],
)

WORKER_HEARTBEAT_RESPONSE = all_required(
    {
        "ok": constant(True),
        "workerId": STRING,
        "isActiveRecently": BOOLEAN,
        "openSessionCount": nullable(integer(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)),
        "lastHeartbeatAt": DATE_TIME,
        "lastActiveAt": nullable(DATE_TIME),
    }
)

# --- workers and their instances -------------------------------------------------------------

_INSTANCE = all_required(
    {
        "provider": STRING,
        "region": nullable(STRING),
        "url": nullable(STRING),
        "status": STRING,
        "createdAt": DATE_TIME,
        "updatedAt": DATE_TIME,
    }
)
WORKER_INSTANCE = nullable(_INSTANCE)  # a worker may have no instance yet

WORKER_FIELDS: dict[str, Schema] = {
    "id": WORKER_ID,
    "orgId": ORG_ID,
    "createdByUserId": nullable(USER_ID),
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

WORKER = all_required(WORKER_FIELDS)
# A list entry is a worker with its instance alongside, every field required.
LISTED_WORKER = all_required({"instance": ref("WorkerInstance"), **WORKER_FIELDS})
WORKER_LIST_RESPONSE = obj({"workers": array(LISTED_WORKER)}, required=["workers"])
WORKER_RESPONSE = all_required({"worker": ref("Worker"), "instance": ref("WorkerInstance")})

SCHEMAS: dict[str, Schema] = {
    "InvalidRequestError": INVALID_REQUEST_ERROR,
    "UnauthorizedError": UNAUTHORIZED_ERROR,
    "NotFoundError": NOT_FOUND_ERROR,
    "WorkerHeartbeatResponse": WORKER_HEARTBEAT_RESPONSE,
    "WorkerInstance": WORKER_INSTANCE,
    "Worker": WORKER,
    "WorkerListResponse": WORKER_LIST_RESPONSE,
    "WorkerResponse": WORKER_RESPONSE,
}

# --- operations ------------------------------------------------------------------------------

_ERRORS_400_401 = {400: ref("InvalidRequestError"), 401: ref("UnauthorizedError")}

HEARTBEAT = operation(
    "postV1WorkersByIdActivityHeartbeat",
    {200: ref("WorkerHeartbeatResponse"), **_ERRORS_400_401, 404: ref("NotFoundError")},
    parameters=[path_parameter("id", WORKER_ID)],
    body=json_body(HEARTBEAT_REQUEST),
)

LIST_WORKERS = operation(
    "getV1Workers",
    {200: ref("WorkerListResponse"), **_ERRORS_400_401},
    parameters=[query_parameter("limit", integer(**LIST_LIMIT))],
)

GET_WORKER = operation(
    "getV1WorkersById",
    {200: ref("WorkerResponse"), **_ERRORS_400_401, 404: ref("NotFoundError")},
    parameters=[path_parameter("id", WORKER_ID)],
)


def heartbeat_document() -> Schema:
    return document("Den: record a worker heartbeat", HEARTBEAT_PATH, "post", HEARTBEAT, SCHEMAS)


def list_workers_document() -> Schema:
    return document("Den: list workers", LIST_PATH, "get", LIST_WORKERS, SCHEMAS)


def get_worker_document() -> Schema:
    return document("Den: get one worker", GET_PATH, "get", GET_WORKER, SCHEMAS)
