"""`GET /v1/workers/summary`: an org's workers counted by liveness and by lifecycle status.

Nothing here scans the fleet: the status counts are rows of `worker_counts` (kept by triggers,
migration 0006) and the liveness counts are score ranges of the fleet index (`fleet_index`).
"""

from __future__ import annotations

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api import error_responses
from api.auth import CALLER, Credential, credential_of
from api.fleet_filters import STATUSES
from api.fleet_index import count_liveness
from api.json_io import JSON
from api.state import ApiState
from shared.contract.times import format_ms, now_ms
from shared.contract.wire import DateTime
from shared.redis.connect import REDIS_DOWN

# One row per status the org has (or one with nulls): the caller check and counts together.
_COUNTS = f"""{CALLER}
SELECT c.org_id, k.status::text AS status, k.n
  FROM caller c LEFT JOIN worker_counts k ON k.org_id = c.org_id
"""


class LivenessCounts(msgspec.Struct):
    online: int
    stale: int
    offline: int
    never: int


class FleetSummary(msgspec.Struct):
    total: int
    liveness: LivenessCounts
    status: dict[str, int]
    asOf: DateTime


async def _fetch_counts(
    conn: asyncpg.Connection | asyncpg.Pool, credential: Credential
) -> list[asyncpg.Record]:
    return await conn.fetch(_COUNTS, credential.session_hash, credential.api_key_hash)


async def worker_summary(request: Request) -> Response:
    state: ApiState = request.app.state.api
    credential = credential_of(request)
    if credential is None:
        return error_responses.unauthorized()
    rows = await state.read(_fetch_counts, credential)
    if not rows:
        return error_responses.unauthorized()
    org_id = rows[0]["org_id"]
    status = dict.fromkeys(STATUSES, 0)
    for row in rows:
        if row["status"] is not None:
            status[row["status"]] = max(0, row["n"])
    total = sum(status.values())
    now = now_ms()
    try:
        indexed = await count_liveness(state.reads_redis, state.settings, org_id, now)
    except REDIS_DOWN:
        return error_responses.redis_unavailable(state.settings.retry_after)
    # A worker deleted between the two reads may still be counted by one of them.
    never = max(0, total - indexed.indexed)
    liveness = LivenessCounts(indexed.online, indexed.stale, indexed.offline, never)
    return JSON(FleetSummary(total, liveness, status, format_ms(now)))
