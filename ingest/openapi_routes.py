"""The ingest service's routes for its OpenAPI document: Den's and Kubiya's heartbeats."""

from __future__ import annotations

from shared.contract.wire import (
    DenHeartbeat,
    HTTPValidationError,
    InvalidRequestError,
    KubiyaError,
    NotFoundError,
    UnauthorizedError,
    WorkerHeartbeatRequest,
    WorkerHeartbeatResponse,
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
        replies={
            204: Reply("Heartbeat recorded."),
            401: Reply("Missing or invalid credentials.", KubiyaError),
            404: Reply("Unknown worker, or not in the API key's org.", KubiyaError),
            413: Reply("The request body is too large.", KubiyaError),
            422: Reply("Validation Error", HTTPValidationError),
            503: Reply("Redis is unreachable; retry later.", KubiyaError, RETRY_AFTER),
        },
    ),
    *operational_routes("Redis is reachable."),
]  # fmt: skip

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
    return build_document(
        "Heartbeat ingest",
        "Worker heartbeats, Den- and Kubiya-compatible, written to Redis.",
        ROUTES,
        SECURITY,
    )
