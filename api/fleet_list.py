"""A filtered `GET /v1/workers` page (liveness, status, name prefix).

The order stays the list's keyset order (`created_at desc, id desc`) and each page matches
liveness at the instant it is read, so a worker that changes liveness between pages is seen at
most once: in a later page if it matches when that page is read, never again once its place in
the order is behind the cursor. See "Filtering the list" in docs/operations.md.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from starlette.responses import Response

from api import error_responses
from api.auth import Credential, authenticate, caller_of
from api.cursor import Cursor, encode_cursor
from api.fleet_filters import LIVENESS, WorkerFilter, filter_text
from api.fleet_index import (
    LivenessSelection,
    bounds,
    index_scores,
    liveness_of_score,
    select_liveness,
)
from api.fleet_queries import LivenessCondition, fetch_candidates, fetch_filtered_page
from api.state import ApiState
from api.worker_view import NO_LIVE_FIELDS, WorkerListResponse, list_item_view
from shared.contract.liveness import Liveness
from shared.contract.times import now_ms
from shared.redis.connect import REDIS_DOWN

# The walk reads keys in batches: the first twice the page, the next sized by the matches seen
# so far. When the matches look rarer than a page per WALK_MAX keys, the index's ids are cheaper.
WALK_MAX = 4000


async def _walk(
    state: ApiState,
    org_id: str,
    after: Cursor | None,
    wanted: WorkerFilter,
    limit: int,
    now: int,
) -> LivenessSelection | None:
    """The ids of the page's rows (and the one after it, if any): the org's workers walked in
    the list's order and checked against the fleet index, a batch at a time. None when the
    matches are too rare for a walk to pay (without `never`: the index has them in full)."""
    liveness = wanted.liveness or frozenset(Liveness)
    b = bounds(now, state.settings)
    reader = state.pipe if state.pipe is not None else state.redis
    position = None if after is None else (after.created_at, after.worker_id)
    matched: list[str] = []
    scanned, batch = 0, 2 * (limit + 1)
    while True:
        rows = await state.read(fetch_candidates, org_id, position, wanted, batch)
        ids = [row["id"] for row in rows]
        scores = await index_scores(reader, state.settings.shards, org_id, ids)
        for worker_id, score in zip(ids, scores, strict=True):
            if liveness_of_score(score, b) in liveness:
                matched.append(worker_id)
        scanned += len(rows)
        missing = limit + 1 - len(matched)
        if missing <= 0 or len(rows) < batch:
            return LivenessSelection(matched[: limit + 1], include=True)
        # Keys still to read at the density seen so far, with a margin.
        ahead = math.ceil(missing * scanned / max(len(matched), 0.5) * 1.25)
        if ahead > WALK_MAX and Liveness.NEVER not in liveness:
            return None
        batch = min(max(ahead, limit + 1), WALK_MAX)
        position = (rows[-1]["created_at"], rows[-1]["id"])


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
            selection = await _walk(state, caller.org_id, after, wanted, limit, now)
            if selection is None:  # rare matches: take them from the index
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
