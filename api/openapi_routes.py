"""The API's routes for its OpenAPI document: Den's worker reads, and worker and API key
management."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from api.bodies import (
    ApiKeyList,
    CreateApiKey,
    CreatedApiKey,
    CreatedWorker,
    CreateWorker,
    RotatedToken,
)
from api.events_read import EventList, StreamedEvent
from api.fleet_filters import LIVENESS, MAX_PREFIX, STATUSES
from api.fleet_summary import FleetSummary
from api.webhooks import (
    CreatedWebhook,
    CreateWebhook,
    DeliveryList,
    WebhookId,
    WebhookList,
)
from api.worker_view import WorkerListResponse, WorkerResponse
from shared.contract.events import TYPES, EventId
from shared.contract.wire import (
    ApiKeyId,
    Error,
    InvalidRequestError,
    NotFoundError,
    UnauthorizedError,
    WorkerId,
)
from shared.web.openapi import (
    TOO_LARGE,
    UNAVAILABLE,
    Operation,
    Param,
    Reply,
    Schema,
    build_document,
    operational_routes,
)


def _comma_list_pattern(values: tuple[str, ...]) -> str:
    one = "(" + "|".join(values) + ")"
    return f"^{one}(,{one})*$"


Limit = Annotated[int, msgspec.Meta(ge=1, le=50, extra_json_schema={"default": 20})]
CursorText = Annotated[str, msgspec.Meta()]
LivenessList = Annotated[str, msgspec.Meta(pattern=_comma_list_pattern(LIVENESS))]
StatusList = Annotated[str, msgspec.Meta(pattern=_comma_list_pattern(STATUSES))]
EventLimit = Annotated[int, msgspec.Meta(ge=1, le=100, extra_json_schema={"default": 20})]
DeliveryLimit = Annotated[int, msgspec.Meta(ge=1, le=100, extra_json_schema={"default": 100})]
EventTypes = Annotated[str, msgspec.Meta(pattern=_comma_list_pattern(TYPES).replace(".", "\\."))]
NamePrefix = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PREFIX)]

REGISTRY_PENDING: Schema = {
    "X-Registry-Sync": {
        "schema": {"type": "string", "const": "pending"},
        "description": "Saved in Postgres; Redis was unreachable and the flusher will catch up.",
    }
}
CALLER: list[Schema] = [{"bearerAuth": []}, {"denApiKey": []}]
SESSION: list[Schema] = [{"bearerAuth": []}]

UNAUTHORIZED = Reply("No valid session token or API key.", UnauthorizedError)
FORBIDDEN = Reply(
    "API keys are managed with a session token only; or the organization has "
    "HB_MAX_API_KEYS_PER_ORG live keys (`quota_exceeded`).",
    Error,
)
NOT_FOUND = Reply("No such worker in the caller's organization.", NotFoundError)
WORKER_ID = [Param("id", "path", WorkerId, "The worker's id.")]
WEBHOOK_ID = [Param("id", "path", WebhookId, "The webhook's id.")]
WEBHOOK_NOT_FOUND = Reply("No such live webhook in the caller's organization.", NotFoundError)


def _op(
    method: str,
    path: str,
    tag: str,
    summary: str,
    op_id: str,
    replies: dict[int, Reply],
    security: list[Schema] = CALLER,
    **extra: Any,
) -> Operation:
    return Operation(method, path, tag, summary, {**replies, 503: UNAVAILABLE},
                     operation_id=op_id, security=security, **extra)  # fmt: skip


ROUTES = [
    _op("get", "/v1/workers", "Workers", "List workers", "getV1Workers", {
        200: Reply("Newest first, each with its latest instance.", WorkerListResponse),
        400: Reply("Invalid limit, cursor or filter.", InvalidRequestError),
        401: UNAUTHORIZED,
    }, params=[
        Param("limit", "query", Limit),
        Param("cursor", "query", CursorText,
              "The `nextCursor` of the previous page; it carries the page's filters."),
        Param("liveness", "query", LivenessList,
              "Only workers of these liveness values at the time each page is read "
              "(comma list of online, stale, offline, never)."),
        Param("status", "query", StatusList,
              "Only workers of these lifecycle statuses (comma list of provisioning, "
              "healthy, failed, stopped)."),
        Param("q", "query", NamePrefix, "Only workers whose name starts with this, any case."),
    ]),
    _op("get", "/v1/workers/summary", "Workers", "Count the org's workers",
        "getV1WorkersSummary", {
        200: Reply("Counts by liveness and by lifecycle status, as of `asOf`.", FleetSummary),
        401: UNAUTHORIZED,
    }),
    _op("post", "/v1/workers", "Workers", "Create a worker", "postV1Workers", {
        201: Reply("Created, with its heartbeat token.", CreatedWorker, REGISTRY_PENDING),
        400: Reply("Invalid body.", InvalidRequestError),
        401: UNAUTHORIZED,
        403: Reply("The organization has HB_MAX_WORKERS_PER_ORG live workers.", Error),
        413: TOO_LARGE,
    }, body=CreateWorker),
    _op("get", "/v1/workers/{id}", "Workers", "Get worker", "getV1WorkersById", {
        200: Reply("The worker (with its recent log lines) and its latest instance.",
                   WorkerResponse),
        400: Reply("Invalid worker id.", InvalidRequestError),
        401: UNAUTHORIZED,
        404: NOT_FOUND,
    }, params=WORKER_ID),
    _op("delete", "/v1/workers/{id}", "Workers", "Delete worker", "deleteV1WorkersById", {
        204: Reply("Deleted; ingest answers 404 for it from now on.", None, REGISTRY_PENDING),
        400: Reply("Invalid worker id.", InvalidRequestError),
        401: UNAUTHORIZED,
        404: NOT_FOUND,
    }, params=WORKER_ID),
    _op("post", "/v1/workers/{id}/heartbeat-token", "Workers", "Rotate the heartbeat token",
        "postV1WorkersByIdHeartbeatToken", {
        200: Reply("Every older token is refused from now.", RotatedToken, REGISTRY_PENDING),
        400: Reply("Invalid worker id.", InvalidRequestError),
        401: UNAUTHORIZED,
        404: NOT_FOUND,
    }, params=WORKER_ID),
    _op("get", "/v1/events", "Events", "List fleet events", "getV1Events", {
        200: Reply("The org's events, newest first.", EventList),
        400: Reply("Invalid limit, cursor, type or workerId.", InvalidRequestError),
        401: UNAUTHORIZED,
    }, params=[
        Param("limit", "query", EventLimit),
        Param("cursor", "query", EventId, "The `nextCursor` of the previous page."),
        Param("type", "query", EventTypes, "Only these types (comma list)."),
        Param("workerId", "query", WorkerId, "Only this worker's events."),
    ]),
    _op("get", "/v1/events/stream", "Events", "Stream fleet events", "getV1EventsStream", {
        200: Reply(
            "Server-Sent Events: each event's `id`, `event` (its type) and `data` (the event "
            "as in the list); a comment line every HB_SSE_KEEPALIVE seconds while idle.",
            StreamedEvent, media_type="text/event-stream",
        ),
        400: Reply("Invalid Last-Event-ID.", InvalidRequestError),
        401: UNAUTHORIZED,
    }, params=[
        Param("Last-Event-ID", "header", EventId,
              "Resume after this event (what EventSource sends on reconnect); without it, "
              "only events from now on."),
    ]),
    _op("post", "/v1/webhooks", "Webhooks", "Create a webhook", "postV1Webhooks", {
        201: Reply("Created; the signing secret is shown once.", CreatedWebhook),
        400: Reply("Invalid body, or a URL that resolves to a private or loopback address.",
                   InvalidRequestError),
        401: UNAUTHORIZED,
        413: TOO_LARGE,
    }, body=CreateWebhook),
    _op("get", "/v1/webhooks", "Webhooks", "List webhooks", "getV1Webhooks", {
        200: Reply("The org's webhooks, never their secrets.", WebhookList),
        401: UNAUTHORIZED,
    }),
    _op("delete", "/v1/webhooks/{id}", "Webhooks", "Delete a webhook", "deleteV1WebhooksById", {
        204: Reply("Deleted; its pending deliveries are marked failed."),
        400: Reply("Invalid webhook id.", InvalidRequestError),
        401: UNAUTHORIZED,
        404: WEBHOOK_NOT_FOUND,
    }, params=WEBHOOK_ID),
    _op("get", "/v1/webhooks/{id}/deliveries", "Webhooks", "List a webhook's deliveries",
        "getV1WebhooksByIdDeliveries", {
        200: Reply("Newest first, each with its status, attempts and last error.",
                   DeliveryList),
        400: Reply("Invalid webhook id, limit or cursor.", InvalidRequestError),
        401: UNAUTHORIZED,
        404: WEBHOOK_NOT_FOUND,
    }, params=[
        *WEBHOOK_ID,
        Param("limit", "query", DeliveryLimit),
        Param("cursor", "query", EventId, "The `nextCursor` of the previous page."),
    ]),
    _op("get", "/v1/api-keys", "API Keys", "List API keys", "getV1ApiKeys", {
        200: Reply("The org's keys, never their secrets.", ApiKeyList),
        401: UNAUTHORIZED,
        403: FORBIDDEN,
    }, SESSION),
    _op("post", "/v1/api-keys", "API Keys", "Create an API key", "postV1ApiKeys", {
        201: Reply("Created; the secret is shown once.", CreatedApiKey, REGISTRY_PENDING),
        400: Reply("Invalid body.", InvalidRequestError),
        401: UNAUTHORIZED,
        403: FORBIDDEN,
        413: TOO_LARGE,
    }, SESSION, body=CreateApiKey),
    _op("delete", "/v1/api-keys/{id}", "API Keys", "Revoke an API key", "deleteV1ApiKeysById", {
        204: Reply("Revoked.", None, REGISTRY_PENDING),
        400: Reply("Invalid API key id.", InvalidRequestError),
        401: UNAUTHORIZED,
        403: FORBIDDEN,
        404: Reply("No such live key in the org.", NotFoundError),
    }, SESSION, params=[Param("id", "path", ApiKeyId, "The API key's id.")]),
    _op("delete", "/v1/session", "Sessions", "End the caller's session", "deleteV1Session", {
        204: Reply("Ended: the token is refused from now on."),
        401: UNAUTHORIZED,
        403: Reply("An API key has no session to end.", Error),
    }, SESSION),
    *operational_routes("Postgres and Redis are reachable."),
]  # fmt: skip

SECURITY: dict[str, Schema] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "A session token."},
    "denApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                  "description": "An organization API key."},
}  # fmt: skip


def api_document() -> Schema:
    return build_document(
        "Heartbeat API",
        "Den-compatible worker reads merged from Redis and Postgres, and management of "
        "workers, their heartbeat tokens and org API keys.",
        ROUTES,
        SECURITY,
    )
