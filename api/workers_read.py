"""`GET /v1/workers` and `GET /v1/workers/{id}` (Den), merged with the fresh Redis fields."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from api import error_responses
from api.auth import caller_of, credential_of
from api.cursor import Cursor, MalformedCursor, decode_cursor, encode_cursor
from api.fleet_filters import InvalidFilter, filter_from_text, parse_filter
from api.fleet_list import list_filtered
from api.json_io import JSON
from api.state import ApiState
from api.worker_view import (
    NO_LIVE_FIELDS,
    WorkerListResponse,
    WorkerResponse,
    detail_view,
    instance_view,
    list_item_view,
)
from shared.contract import typeid
from shared.contract.times import now_ms

DEFAULT_LIMIT = 20
MAX_LIMIT = 50
_DIGITS = re.compile(r"[0-9]{1,6}")  # ASCII: \d also matches Arabic-Indic digits

DEGRADED_HEADER = "X-Heartbeat-Data"


def degraded_headers(state: ApiState) -> dict[str, str]:
    bound = f"{state.stale_bound:g}"
    return {
        DEGRADED_HEADER: "durable-only",
        "Warning": f'199 hb-api "Heartbeat store unavailable; heartbeat fields may be up to '
        f'{bound}s old"',
    }


async def list_workers(request: Request) -> Response:
    state: ApiState = request.app.state.api
    raw_limit = request.query_params.get("limit")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        if not _DIGITS.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            return error_responses.invalid(f"Expected an integer from 1 to {MAX_LIMIT}.", ["limit"])
        limit = int(raw_limit)
    try:
        wanted = parse_filter(request.query_params)
    except InvalidFilter as exc:
        return error_responses.invalid(exc.message, [exc.param])
    # Credentials before the cursor: nothing a caller without any gets past this point.
    credential = credential_of(request)
    if credential is None:
        return error_responses.unauthorized()
    after: Cursor | None = None
    raw_cursor = request.query_params.get("cursor")
    if raw_cursor:
        try:
            after = decode_cursor(raw_cursor)
        except MalformedCursor:
            return error_responses.invalid(
                "Malformed cursor; pass back a nextCursor as is.", ["cursor"]
            )
    if after is not None and after.filters:
        # A filtered page's cursor carries its filters; the query may repeat them, not change them.
        try:
            carried = filter_from_text(after.filters)
        except InvalidFilter:
            return error_responses.invalid(
                "Malformed cursor; pass back a nextCursor as is.", ["cursor"]
            )
        if wanted.active and wanted != carried:
            return error_responses.invalid(
                "The cursor belongs to other filters; start again without it.", ["cursor"]
            )
        wanted = carried
    if wanted.active:
        filtered = await list_filtered(state, credential, limit, wanted, after)
        if isinstance(filtered, Response):
            return filtered
        headers = degraded_headers(state) if filtered.degraded else None
        return JSON(filtered.page, headers=headers)

    # One more row than asked tells whether there is a next page.
    rows = await state.page_rows(credential, limit + 1, after)
    if not rows:
        return error_responses.unauthorized()
    caller = caller_of(rows[0])
    rows = [row for row in rows if row["id"] is not None]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(Cursor(rows[-1]["created_at"], rows[-1]["id"]))

    live = await state.live_fields([row["id"] for row in rows])
    now = now_ms()
    workers = [
        list_item_view(
            row, NO_LIVE_FIELDS if live is None else live[i], caller.user_id, now, state.settings
        )
        for i, row in enumerate(rows)
    ]
    headers = degraded_headers(state) if live is None else None
    return JSON(WorkerListResponse(workers, next_cursor), headers=headers)


async def get_worker(request: Request) -> Response:
    state: ApiState = request.app.state.api
    worker_id: str = request.path_params["id"]
    if not typeid.is_valid(worker_id, typeid.WORKER):
        return error_responses.invalid_id(typeid.WORKER)
    credential = credential_of(request)
    if credential is None:
        return error_responses.unauthorized()

    row = await state.worker_row(credential, worker_id)
    if row is None:
        return error_responses.unauthorized()
    # Another organization's worker is indistinguishable from a missing one.
    if row["id"] is None:
        return error_responses.worker_not_found()
    live = await state.worker_live(worker_id)
    fields, logs = (NO_LIVE_FIELDS, []) if live is None else live
    worker = detail_view(row, fields, logs, caller_of(row).user_id, now_ms(), state.settings)
    headers = degraded_headers(state) if live is None else None
    return JSON(WorkerResponse(worker, instance_view(row)), headers=headers)
