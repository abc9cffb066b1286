"""The liveness sweep: announces workers going online, stale and offline as events.

Every `HB_FLUSH_INTERVAL` each flusher runs `sweep_liveness.lua` on every shard: atomic and
watermarked in Redis, so several flushers together announce each transition once. The events
wait in the shard's pending set until a flusher has written them to Postgres (the unique key
`(worker_id, type, at)` absorbs a second write), then leave it: a flusher that dies between the
two leaves them for the next sweep, by any flusher.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import NamedTuple

import asyncpg
from redis.asyncio import Redis

from shared.contract import keys
from shared.contract.events import SWEEP_LIVENESS, parse_pending, sweep_call
from shared.contract.times import format_ms, from_ms, now_ms
from shared.redis.lua import run_pipelined
from shared.settings import Settings

# Organizations with live workers: one probe of `workers_org_created` each.
_ORGS = """
SELECT o.id FROM organizations o
 WHERE EXISTS (SELECT 1 FROM workers w WHERE w.org_id = o.id AND w.deleted_at IS NULL)
"""

_INSERT = """
INSERT INTO events (org_id, type, worker_id, at, data)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[])
 ORDER BY 4
ON CONFLICT DO NOTHING
"""

_RETENTION = """
DELETE FROM events WHERE id IN (
    SELECT id FROM events WHERE at < now() - make_interval(secs => $1) LIMIT $2)
"""
RETENTION_BATCH = 10_000


class Swept(NamedTuple):
    found: int  # events the sweep found now
    written: int  # pending events written to Postgres (found now or left by an earlier run)


def thresholds_ms(settings: Settings) -> tuple[int, int]:
    """Whole ms such that `liveness_of` says stale exactly when now - hb >= the first."""
    return math.ceil(settings.stale_after * 1000), math.ceil(settings.offline_after * 1000)


async def sweep_liveness(
    redis: Redis, pool: asyncpg.Pool, settings: Settings, now: int | None = None
) -> Swept:
    """One sweep of every shard at `now` (default: the clock), then write what is pending."""
    orgs = [r["id"] for r in await pool.fetch(_ORGS)]
    stale_ms, offline_ms = thresholds_ms(settings)
    now = now_ms() if now is None else now
    calls = [sweep_call(s, orgs, now, stale_ms, offline_ms) for s in range(settings.shards)]
    found = sum(len(reply) for reply in await run_pipelined(redis, SWEEP_LIVENESS, calls))
    written = await write_pending(redis, pool, settings.shards)
    return Swept(found, written)


async def write_pending(redis: Redis, pool: asyncpg.Pool, shards: int) -> int:
    """Move every shard's pending events to Postgres; returns how many were pending."""
    pipe = redis.pipeline(transaction=False)
    for shard in range(shards):
        pipe.zrange(keys.pending_events_key(shard), 0, -1)
    pending: dict[int, list[bytes]] = defaultdict(list)
    for shard, members in enumerate(await pipe.execute()):
        if members:
            pending[shard] = members
    if not pending:
        return 0
    events = [parse_pending(m) for members in pending.values() for m in members]
    columns: tuple[list[object], ...] = ([], [], [], [], [])
    for e in events:
        hb = None if e.heartbeat_ms is None else format_ms(e.heartbeat_ms)
        data = {"previous": e.previous, "lastHeartbeatAt": hb}
        for column, value in zip(
            columns, (e.org_id, e.type, e.worker_id, from_ms(e.at_ms), json.dumps(data)),
            strict=True,
        ):  # fmt: skip
            column.append(value)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(events_order_lock())")
        await conn.execute(_INSERT, *columns)
    pipe = redis.pipeline(transaction=False)
    for shard, members in pending.items():
        pipe.zrem(keys.pending_events_key(shard), *members)
    await pipe.execute()
    return len(events)


async def delete_expired_events(pool: asyncpg.Pool, retention_s: float) -> int:
    """Delete up to a batch of events older than the retention; returns how many."""
    status = await pool.execute(_RETENTION, retention_s, RETENTION_BATCH)
    return int(status.split()[-1])
