"""The Postgres side of a flush: one `UPDATE ... FROM unnest(...)` per chunk of workers.

The write is idempotent, so arq's at-least-once runs, a re-claimed lease or a retry after a
failure are harmless: the two timestamps only move forward (`GREATEST`), and the other fields
are taken only from a heartbeat at least as new as the one Postgres holds (newest wins, as in
the read API's merge).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from operator import itemgetter

import asyncpg

from flusher.claims import LiveRow

log = logging.getLogger("hb.flusher")

# What "Postgres is unavailable" looks like; anything else is a bug and should surface.
PG_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,  # e.g. the server is shutting down
)

_NEWER = "(w.last_heartbeat_at IS NULL OR b.hb >= w.last_heartbeat_at)"
_KUBIYA = f"{_NEWER} AND b.ks IS NOT NULL"

PERSIST_SQL = f"""
UPDATE workers AS w SET
    last_heartbeat_at = GREATEST(w.last_heartbeat_at, b.hb),
    last_active_at = GREATEST(w.last_active_at, b.act),
    is_active_recently = CASE WHEN {_NEWER}
        THEN COALESCE(b.iar, w.is_active_recently) ELSE w.is_active_recently END,
    open_session_count = CASE WHEN {_NEWER}
        THEN COALESCE(b.osc, w.open_session_count) ELSE w.open_session_count END,
    clock_skew_ms = CASE WHEN {_NEWER}
        THEN COALESCE(b.skew, w.clock_skew_ms) ELSE w.clock_skew_ms END,
    reported_status = CASE WHEN {_KUBIYA} THEN b.ks ELSE w.reported_status END,
    tasks_processed = CASE WHEN {_KUBIYA} THEN b.kt ELSE w.tasks_processed END,
    current_task_id = CASE WHEN {_KUBIYA} THEN b.kc ELSE w.current_task_id END,
    environment_name = CASE WHEN {_KUBIYA} THEN b.ke ELSE w.environment_name END,
    worker_metadata = CASE WHEN {_KUBIYA} THEN b.km::jsonb ELSE w.worker_metadata END,
    heartbeat_persisted_at = now()
FROM (
    SELECT id, to_timestamp(hb::float8 / 1000) AS hb, to_timestamp(act::float8 / 1000) AS act,
           iar, osc, skew, ks, kt, kc, ke, km
      FROM unnest($1::text[], $2::int8[], $3::int8[], $4::bool[], $5::int8[], $6::int8[],
                  $7::text[], $8::int8[], $9::text[], $10::text[], $11::text[])
           AS u(id, hb, act, iar, osc, skew, ks, kt, kc, ke, km)
    OFFSET 0  -- converts each timestamp once, not once per use below
) AS b
WHERE w.id = b.id AND w.deleted_at IS NULL
  AND ({_NEWER} OR b.act > COALESCE(w.last_active_at, '-infinity'))
"""

# Two flushers may write the same rows at once (a lease re-claimed while the first still writes);
# Postgres then breaks a lock cycle by failing one statement, which is safe to run again.
_DEADLOCK_RETRIES = 3


async def persist_batch(pool: asyncpg.Pool, rows: Sequence[LiveRow]) -> int:
    """Write one chunk of workers' hot fields; returns the rows Postgres updated (deleted or
    unknown workers and beats older than what Postgres holds are not written).

    A value Postgres refuses (a NUL in text, a number out of range) must not stall every other
    worker of the chunk forever: the chunk is split until the offending row stands alone, and
    that row is logged and skipped."""
    if not rows:
        return 0
    columns = [list(column) for column in zip(*rows, strict=True)]
    for attempt in range(_DEADLOCK_RETRIES):
        try:
            status = await pool.execute(PERSIST_SQL, *columns)
            break
        except asyncpg.DeadlockDetectedError:
            if attempt == _DEADLOCK_RETRIES - 1:
                raise
        except (asyncpg.DataError, ValueError) as exc:
            if len(rows) == 1:
                log.error("skipped worker %s: Postgres refused its values: %s", rows[0][0], exc)
                return 0
            half = len(rows) // 2
            return await persist_batch(pool, rows[:half]) + await persist_batch(pool, rows[half:])
    return int(status.rpartition(" ")[2])


async def persist_rows(
    pool: asyncpg.Pool, rows: Sequence[LiveRow], chunk: int, parallel: int = 2
) -> int:
    """`persist_batch` over chunks of `chunk` rows, `parallel` of them at a time."""
    # One lock order for every flusher makes a lock cycle between them unlikely.
    ordered = sorted(rows, key=itemgetter(0))
    chunks = [ordered[i : i + chunk] for i in range(0, len(ordered), chunk)]
    written = 0
    for i in range(0, len(chunks), parallel):
        batch = (persist_batch(pool, c) for c in chunks[i : i + parallel])
        # Let every chunk finish before failing, so none is still writing after a release.
        for result in await asyncio.gather(*batch, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result
            written += result
    return written
