"""Webhooks: `POST/GET /v1/webhooks`, `DELETE /v1/webhooks/{id}` and the deliveries of one,
`GET /v1/webhooks/{id}/deliveries`. The flusher delivers (flusher/webhook_delivery.py)."""

from __future__ import annotations

import secrets
from typing import Annotated, NamedTuple

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api import error_responses
from api.auth import require_caller
from api.bodies import Text
from api.id_paging import parse_id_page
from api.json_io import JSON, BodyError, decode_body
from api.state import ApiState
from shared.contract import typeid
from shared.contract.events import TYPES
from shared.contract.times import format_dt
from shared.contract.wire import DateTime
from shared.web.address_guard import RefusedAddress, check_url

WebhookId = Annotated[str, msgspec.Meta(pattern=r"^whk_[0-9a-hjkmnp-tv-z]{26}$")]
EventType = Annotated[str, msgspec.Meta(pattern="^(" + "|".join(TYPES).replace(".", r"\.") + ")$")]
Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^https?://[^\x00\s]+$")]
DELIVERIES_SHOWN = 100


class CreateWebhook(msgspec.Struct, forbid_unknown_fields=True):
    url: Url
    events: Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=len(TYPES))]
    description: Text | None = None


class Webhook(msgspec.Struct):
    id: WebhookId
    url: str
    events: list[str]
    description: str | None
    createdAt: DateTime


class CreatedWebhook(msgspec.Struct):
    webhook: Webhook
    secret: Annotated[str, msgspec.Meta(description="Signs the deliveries. Shown once.")]


class WebhookList(msgspec.Struct):
    webhooks: list[Webhook]


class Delivery(msgspec.Struct):
    id: str
    eventId: str
    eventType: str
    status: Annotated[str, msgspec.Meta(pattern="^(pending|delivered|failed)$")]
    attempts: int
    lastError: str | None
    createdAt: DateTime
    updatedAt: DateTime


class DeliveryList(msgspec.Struct):
    deliveries: list[Delivery]
    nextCursor: Annotated[
        str | None, msgspec.Meta(description="Pass back as `cursor` for older deliveries.")
    ]


create_webhook_decoder = msgspec.json.Decoder(CreateWebhook)
_COLUMNS = "id, url, events, description, created_at"


def _view(row: asyncpg.Record) -> Webhook:
    return Webhook(
        row["id"], row["url"], list(row["events"]), row["description"],
        format_dt(row["created_at"]),
    )  # fmt: skip


async def create_webhook(request: Request) -> Response:
    state: ApiState = request.app.state.api
    caller = await require_caller(request, state.pool)
    if caller is None:
        return error_responses.unauthorized()
    try:
        body = await decode_body(request, create_webhook_decoder, state.settings.max_body_bytes)
    except BodyError as exc:
        return exc.response
    try:
        await check_url(body.url, state.settings.webhook_allow_private)
    except RefusedAddress as exc:
        return error_responses.invalid(str(exc), ["url"])
    secret = "whsec_" + secrets.token_urlsafe(32)
    row = await state.pool.fetchrow(
        f"INSERT INTO webhooks (id, org_id, url, events, description, secret)"
        f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
        typeid.new_id(typeid.WEBHOOK), caller.org_id, body.url, sorted(set(body.events)),
        body.description, secret,
    )  # fmt: skip
    return JSON(CreatedWebhook(_view(row), secret), status_code=201)


async def list_webhooks(request: Request) -> Response:
    state: ApiState = request.app.state.api
    caller = await require_caller(request, state.pool)
    if caller is None:
        return error_responses.unauthorized()
    rows = await state.pool.fetch(
        f"SELECT {_COLUMNS} FROM webhooks WHERE org_id = $1 AND deleted_at IS NULL"
        " ORDER BY created_at DESC, id DESC",
        caller.org_id,
    )
    return JSON(WebhookList([_view(r) for r in rows]))


def _not_found() -> Response:
    return error_responses.not_found("webhook_not_found", "Webhook not found.")


_DELETE = """
WITH gone AS (
    UPDATE webhooks SET deleted_at = now()
     WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL RETURNING id
), stopped AS (
    UPDATE webhook_deliveries SET status = 'failed', last_error = 'webhook deleted',
           updated_at = now()
     WHERE webhook_id IN (SELECT id FROM gone) AND status = 'pending'
)
SELECT id FROM gone
"""


class _Target(NamedTuple):
    state: ApiState
    webhook_id: str
    org_id: str


async def _target(request: Request) -> _Target | Response:
    """The webhook a `/v1/webhooks/{id}` route names and the caller's org, or the 400 or 401."""
    state: ApiState = request.app.state.api
    webhook_id: str = request.path_params["id"]
    if not typeid.is_valid(webhook_id, typeid.WEBHOOK):
        return error_responses.invalid_id(typeid.WEBHOOK)
    caller = await require_caller(request, state.pool)
    if caller is None:
        return error_responses.unauthorized()
    return _Target(state, webhook_id, caller.org_id)


async def delete_webhook(request: Request) -> Response:
    target = await _target(request)
    if isinstance(target, Response):
        return target
    state, webhook_id, org_id = target
    # Pending deliveries stop with it, marked failed: left pending, they would stay in the
    # delivery job's due index for good.
    done = await state.pool.fetchval(_DELETE, webhook_id, org_id)
    return Response(status_code=204) if done else _not_found()


async def list_deliveries(request: Request) -> Response:
    target = await _target(request)
    if isinstance(target, Response):
        return target
    state, webhook_id, org_id = target
    page = parse_id_page(request.query_params, DELIVERIES_SHOWN, DELIVERIES_SHOWN)
    if isinstance(page, Response):
        return page
    known = await state.pool.fetchval(
        "SELECT 1 FROM webhooks WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL",
        webhook_id, org_id,
    )  # fmt: skip
    if not known:
        return _not_found()
    rows = await state.pool.fetch(
        "SELECT d.id, d.event_id, e.type, d.status, d.attempts, d.last_error, d.created_at,"
        " d.updated_at FROM webhook_deliveries d JOIN events e ON e.id = d.event_id"
        " WHERE d.webhook_id = $1 AND d.id < $2 ORDER BY d.id DESC LIMIT $3",
        webhook_id, page.before, page.limit + 1,
    )  # fmt: skip
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        next_cursor = str(rows[-1]["id"])
    return JSON(
        DeliveryList([
            Delivery(
                str(r["id"]), str(r["event_id"]), r["type"], r["status"], r["attempts"],
                r["last_error"], format_dt(r["created_at"]), format_dt(r["updated_at"]),
            )
            for r in rows
        ], next_cursor)
    )  # fmt: skip
