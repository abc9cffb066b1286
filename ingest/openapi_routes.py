"""The ingest service's routes for its OpenAPI document: Den's and Kubiya's heartbeats, and
Kubiya's disconnect."""

from __future__ import annotations

from shared.contract.wire import (
    DenHeartbeat,
    HTTPValidationError,
    InvalidRequestError,
    KubiyaError,
    NotFoundError,
    UnauthorizedError,
    WorkerDisconnectRequest,
    WorkerHeartbeatRequest,
    WorkerHeartbeatResponse,
    WorkerHeartbeatSimple,
    WorkerId,
)
from shared.web.openapi import (
    RETRY_AFTER,
    TOO_LARGE,
    UNAVAILABLE,
    Operation,
    Param,
    Reply,
    Schema,
    build_document,
    operational_routes,
)

UNKNOWN_IN_BODY = "Unknown worker, or not in the API key's org."
UNKNOWN_IN_PATH = "Malformed or unknown worker id, or not in the API key's org."


def kubiya_replies(done: str, not_found: str) -> dict[int, Reply]:
    """What Kubiya's routes answer: 204, or an error in Kubiya's shapes."""
    return {
        204: Reply(done),
        401: Reply("Missing or invalid credentials.", KubiyaError),
        404: Reply(not_found, KubiyaError),
        413: Reply("The request body is too large.", KubiyaError),
        422: Reply("Validation Error", HTTPValidationError),
        503: Reply("Redis is unreachable; retry later.", KubiyaError, RETRY_AFTER),
    }


ROUTES = [
    Operation(
        "post", "/v1/workers/{id}/activity-heartbeat", "Worker Activity",
        "Record worker heartbeat (Den)",
        description="Acknowledged only once Redis holds the beat; Postgres follows in "
        "batches. `lastHeartbeatAt` and `lastActiveAt` never move backwards.",
        operation_id="postV1WorkersByIdActivityHeartbeat",
        security=[{"workerBearer": []}, {"denWorkerToken": []}],
        params=[Param("id", "path", WorkerId, "The worker's id.")],
        body=DenHeartbeat,
        replies={
            200: Reply("Heartbeat recorded.", WorkerHeartbeatResponse),
            400: Reply("Invalid worker id or body.", InvalidRequestError),
            401: Reply("Missing, invalid or revoked token.", UnauthorizedError),
            404: Reply("Unknown or deleted worker.", NotFoundError),
            413: TOO_LARGE,
            503: UNAVAILABLE,
        },
    ),
    Operation(
        "post", "/api/v1/workers/heartbeat", "Worker Activity", "Worker heartbeat (Kubiya)",
        description="Bearer is the worker's heartbeat token (its worker must be `worker_id`) "
        "or an org API key (the worker must belong to that org). Unlike Kubiya, a beat Redis "
        "did not take is answered 503, never 204.",
        operation_id="worker_heartbeat_api_v1_workers_heartbeat_post",
        security=[{"workerBearer": []}],
        body=WorkerHeartbeatRequest,
        replies=kubiya_replies("Heartbeat recorded.", UNKNOWN_IN_BODY),
    ),
    Operation(
        "post", "/api/v1/workers/{worker_id}/heartbeat", "Worker Activity",
        "Worker heartbeat, worker id in the path (Kubiya)",
        description="What Kubiya's released worker sends: a lightweight beat (status fields) "
        "every interval, and every few minutes a full one adding `system_info` and the log "
        "lines since the previous full beat. A lightweight beat keeps the stored `system_info`; "
        "log lines are appended to the worker's recent logs (the last 100 lines, at most "
        "HB_MAX_LOG_BYTES together, kept in Redis only). A beat brings a disconnected worker "
        "back online. Bearer is the worker's heartbeat token or an org API key of its org; a "
        "beat Redis did not take is answered 503, never 204.",
        operation_id="worker_heartbeat_simple_api_v1_workers__worker_id__heartbeat_post",
        security=[{"workerBearer": []}],
        params=[Param("worker_id", "path", WorkerId, "The worker's id.")],
        body=WorkerHeartbeatSimple,
        replies=kubiya_replies("Heartbeat recorded.", UNKNOWN_IN_PATH),
    ),
    Operation(
        "post", "/api/v1/workers/{worker_id}/disconnect", "Worker Activity",
        "Worker disconnect (Kubiya)",
        description="The worker stops (on shutdown, error or crash): it is offline at once, "
        "and its `disconnectedAt`, `disconnectReason`, `exitCode` and `errorMessage` are kept "
        "until its next beat clears them. Credentials and answers as for the heartbeat.",
        operation_id="worker_disconnect_api_v1_workers__worker_id__disconnect_post",
        security=[{"workerBearer": []}],
        params=[Param("worker_id", "path", WorkerId, "The worker's id.")],
        body=WorkerDisconnectRequest,
        replies=kubiya_replies("Disconnect recorded.", UNKNOWN_IN_PATH),
    ),
    *operational_routes("Redis is reachable."),
]  # fmt: skip

SECURITY: dict[str, Schema] = {
    "workerBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A worker heartbeat token (`hbw.…`); on Kubiya's routes also an org API "
        "key (`hbk_…`).",
    },
    "denWorkerToken": {"type": "apiKey", "in": "header", "name": "x-den-worker-heartbeat-token"},
}


def ingest_document() -> Schema:
    return build_document(
        "Heartbeat ingest",
        "Worker heartbeats, Den- and Kubiya-compatible, written to Redis.",
        ROUTES,
        SECURITY,
    )
