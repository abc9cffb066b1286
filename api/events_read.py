"""`GET /v1/events` (a page, newest first) and `GET /v1/events/stream` (Server-Sent Events).

Event ids grow in the order events become visible (their writers take one transaction lock,
migration 0006), so "after id N" is a complete resume point for a stream.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from api import error_responses
from api.auth import Caller, require_caller
from api.id_paging import parse_id_page
from api.json_io import JSON
from api.state import ApiState
from shared.contract import typeid
from shared.contract.events import TYPES, Event, EventId
from shared.contract.wire import encoder

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
STREAM_BATCH = 500
_DIGITS = re.compile(r"[0-9]{1,18}")


class EventList(msgspec.Struct):
    events: list[Event]
    nextCursor: Annotated[
        str | None, msgspec.Meta(description="Pass back as `cursor` for older events.")
    ]


_COLUMNS = """id, type, worker_id,
    to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at_text, data::text"""
_PAGE = f"""
SELECT {_COLUMNS} FROM events
 WHERE org_id = $1 AND id < $2 AND ($3::text[] IS NULL OR type = ANY($3))
   AND ($4::text IS NULL OR worker_id = $4)
 ORDER BY id DESC LIMIT $5
"""
_AFTER = f"SELECT {_COLUMNS} FROM events WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
_LAST_ID = "SELECT coalesce(max(id), 0) FROM events WHERE org_id = $1"


def event_view(row: asyncpg.Record) -> Event:
    return Event(
        str(row["id"]), row["type"], row["worker_id"], row["at_text"], msgspec.Raw(row["data"])
    )


class StreamedEvent(msgspec.Struct):
    """One Server-Sent Event of the stream, field by field (`data` is an Event as JSON)."""

    id: EventId
    event: str
    data: str


class _Query(msgspec.Struct):
    limit: int
    before: int
    types: list[str] | None
    worker_id: str | None


def _parse(request: Request) -> _Query | Response:
    params = request.query_params
    page = parse_id_page(params, DEFAULT_LIMIT, MAX_LIMIT)
    if isinstance(page, Response):
        return page
    limit, before = page
    types = None
    if params.getlist("type"):
        types = [t.strip() for raw in params.getlist("type") for t in raw.split(",")]
        if not all(t in TYPES for t in types):
            return error_responses.invalid(
                f"Expected a comma list of: {', '.join(TYPES)}.", ["type"]
            )
    worker_id = params.get("workerId")
    if worker_id is not None and not typeid.is_valid(worker_id, typeid.WORKER):
        return error_responses.invalid(
            error_responses.ID_MESSAGE.format(prefix=typeid.WORKER), ["workerId"]
        )
    return _Query(limit, before, types, worker_id)


async def list_events(request: Request) -> Response:
    state: ApiState = request.app.state.api
    query = _parse(request)
    if isinstance(query, Response):
        return query
    caller = await require_caller(request, state.pool)
    if caller is None:
        return error_responses.unauthorized()
    rows = await state.pool.fetch(
        _PAGE, caller.org_id, query.before, query.types, query.worker_id, query.limit + 1
    )
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_cursor = str(rows[-1]["id"])
    return JSON(EventList([event_view(r) for r in rows], next_cursor))


def sse_frame(event: Event) -> bytes:
    return f"id: {event.id}\nevent: {event.type}\ndata: ".encode() + encoder.encode(event) + b"\n\n"


async def _frames(state: ApiState, caller: Caller, after: int) -> AsyncIterator[bytes]:
    settings = state.settings
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    # A stream ends after a while (the client resumes with Last-Event-ID), so connections
    # rebalance across API replicas and none is held forever.
    ends = quiet_since + settings.event_stream_max
    # An initial comment tells the client (and any proxy) the stream is open.
    yield b": connected\n\n"
    while loop.time() < ends:
        rows = await state.pool.fetch(_AFTER, caller.org_id, after, STREAM_BATCH)
        for row in rows:
            yield sse_frame(event_view(row))
            after = row["id"]
        if rows:
            quiet_since = loop.time()
        elif loop.time() - quiet_since >= settings.sse_keepalive:
            yield b": keep-alive\n\n"
            quiet_since = loop.time()
        if len(rows) < STREAM_BATCH:
            wait = min(settings.event_poll_interval, settings.sse_keepalive, ends - loop.time())
            await asyncio.sleep(max(0.0, wait))


async def stream_events(request: Request) -> Response:
    state: ApiState = request.app.state.api
    caller = await require_caller(request, state.pool)
    if caller is None:
        return error_responses.unauthorized()
    last_id = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if last_id is not None:
        if not _DIGITS.fullmatch(last_id.strip()):
            return error_responses.invalid("Expected an event id.", ["Last-Event-ID"])
        after = int(last_id.strip())
    else:
        # Only events from now on.
        after = await state.pool.fetchval(_LAST_ID, caller.org_id)
    headers: dict[str, Any] = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _frames(state, caller, after), media_type="text/event-stream", headers=headers
    )
