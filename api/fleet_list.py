"""A filtered `GET /v1/workers` page (liveness, status, name prefix).

The order stays the list's keyset order (`created_at desc, id desc`) and each page matches
liveness at the instant it is read, so a worker that changes liveness between pages is seen at
most once: in a later page if it matches when that page is read, never again once its place in
the order is behind the cursor. See "Filtering the list" in docs/operations.md.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

from starlette.responses import Response

from api import error_responses
from api.auth import Credential, caller_of
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

# The walk reads keys in batches, each sized by the share of matches seen so far (the first by
# the share the previous page of the same org and filters saw, else twice the page). When the
# matches look rarer than a page per WALK_MAX keys, the index's ids are cheaper.
WALK_MAX = 4000
SHARES_KEPT = 10_000  # (org, filters) whose last share of matches is remembered
SHARE_FOR = 60.0  # seconds a remembered share is used (a fleet's liveness mix changes)


def _keys_for(wanted: int, share: float) -> int:
    """Keys to read for `wanted` more matches at `share`, with a margin."""
    return math.ceil(wanted / share * 1.25)


def _remember(
    shares: dict[tuple[Any, Any], tuple[float, float]], key: tuple[Any, Any], share: float
) -> None:
    if len(shares) >= SHARES_KEPT:
        shares.clear()
    shares[key] = (share, time.monotonic() + SHARE_FOR)


class Walked(NamedTuple):
    org_id: str
    selection: LivenessSelection | None  # None: matches too rare to walk for


async def _walk(
    state: ApiState,
    credential: Credential,
    after: Cursor | None,
    wanted: WorkerFilter,
    limit: int,
    now: int,
) -> Walked | None:
    """The ids of the page's rows (and the one after it, if any): the org's workers walked in
    the list's order and checked against the fleet index, a batch at a time. Its selection is
    None when the matches are too rare for a walk to pay (without `never`: the index has them
    in full). None when the credential is not valid (the first batch's statement checks it).
    """
    liveness = wanted.liveness or frozenset(Liveness)
    b = bounds(now, state.settings)
    position = None if after is None else (after.created_at, after.worker_id)
    shares, asked = state.filter_shares, (credential, wanted)
    batch = 2 * (limit + 1)
    seen_before = shares.get(asked)
    rare = False
    if seen_before is not None and seen_before[1] > time.monotonic():
        batch = _keys_for(limit + 1, seen_before[0])
        # Too rare the last time: this statement only checks the credential and names the org.
        rare = batch > WALK_MAX and Liveness.NEVER not in liveness
        batch = 1 if rare else min(max(batch, limit + 1), WALK_MAX)

    rows = await state.read(fetch_candidates, credential, position, wanted, batch)
    if not rows:
        return None
    org_id: str = rows[0]["org_id"]
    if rare:
        return Walked(org_id, None)
    rows = [row for row in rows if row["id"] is not None]
    matched: list[str] = []
    scanned = 0
    while True:
        ids = [row["id"] for row in rows]
        scores = await index_scores(state.reads_redis, state.settings.shards, org_id, ids)
        for worker_id, score in zip(ids, scores, strict=True):
            if liveness_of_score(score, b) in liveness:
                matched.append(worker_id)
        scanned += len(rows)
        missing = limit + 1 - len(matched)
        share = max(len(matched), 0.5) / max(scanned, 1)
        if scanned:
            _remember(shares, asked, share)
        if missing <= 0 or len(rows) < batch:
            return Walked(org_id, LivenessSelection(matched[: limit + 1], include=True))
        ahead = _keys_for(missing, share)
        if ahead > WALK_MAX and Liveness.NEVER not in liveness:
            return Walked(org_id, None)
        batch = min(max(ahead, limit + 1), WALK_MAX)
        position = (rows[-1]["created_at"], rows[-1]["id"])
        rows = await state.read(fetch_candidates, org_id, position, wanted, batch)


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
        try:
            walked = await _walk(state, credential, after, wanted, limit, now)
            if walked is None:
                return error_responses.unauthorized()
            selection = walked.selection
            if selection is None:  # rare matches: take them from the index
                selection = await select_liveness(
                    state.reads_redis, state.settings, walked.org_id, wanted.liveness, now
                )
            if selection.include and not selection.ids:  # nothing matches: no page to read
                return FilteredPage(WorkerListResponse([], None), False)
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
