"""A filtered `GET /v1/workers` page (liveness, status, name prefix).

The order stays the list's keyset order (`created_at desc, id desc`) and each page matches
liveness at the instant it is read, so a worker that changes liveness between pages is seen at
most once: in a later page if it matches when that page is read, never again once its place in
the order is behind the cursor. See "Filtering the list" in docs/operations.md.
"""

from __future__ import annotations

from typing import NamedTuple

from starlette.responses import Response

from api import error_responses
from api.auth import Credential, authenticate, caller_of
from api.cursor import Cursor, encode_cursor
from api.fleet_filters import LIVENESS, WorkerFilter, filter_text
from api.fleet_index import bounds, select_liveness
from api.fleet_queries import LivenessCondition, fetch_filtered_page
from api.state import ApiState
from api.worker_view import NO_LIVE_FIELDS, WorkerListResponse, list_item_view
from shared.contract.times import now_ms
from shared.redis.connect import REDIS_DOWN


class FilteredPage(NamedTuple):
    page: WorkerListResponse
    degraded: bool  # some of it from durable data only (Redis unreachable)


async def list_filtered(
    state: ApiState,
    credential: Credential,
    limit: int,
    wanted: WorkerFilter,
    after: Cursor | None,
) -> FilteredPage | Response:
    """The page, or an error response."""
    now = now_ms()
    liveness: LivenessCondition | None = None
    degraded = False
    if wanted.liveness is not None and len(wanted.liveness) < len(LIVENESS):
        # The fleet index is per org: the caller's org first (one indexed lookup).
        caller = await state.read(authenticate, credential)
        if caller is None:
            return error_responses.unauthorized()
        try:
            selection = await select_liveness(
                state.redis, state.settings, caller.org_id, wanted.liveness, now
            )
            liveness = LivenessCondition(selection)
        except REDIS_DOWN:
            degraded = True
            liveness = LivenessCondition(None, (bounds(now, state.settings), wanted.liveness))

    rows = await state.read(fetch_filtered_page, credential, limit + 1, after, wanted, liveness)
    if not rows:
        return error_responses.unauthorized()
    caller_user_id = caller_of(rows[0]).user_id
    rows = [row for row in rows if row["id"] is not None]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(Cursor(last["created_at"], last["id"], filter_text(wanted)))

    live = await state.live_fields([row["id"] for row in rows])
    workers = [
        # The same instant as the filter, so a row's liveness is the one it matched (unless a
        # beat arrived in between).
        list_item_view(
            row, NO_LIVE_FIELDS if live is None else live[i], caller_user_id, now, state.settings
        )
        for i, row in enumerate(rows)
    ]
    return FilteredPage(WorkerListResponse(workers, next_cursor), live is None or degraded)
