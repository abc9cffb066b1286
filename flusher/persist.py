"""The Postgres side of a flush: one `UPDATE ... FROM unnest(...)` per chunk of workers.

The write is idempotent, so arq's at-least-once runs, a re-claimed lease or a retry after a
failure are harmless: the two timestamps only move forward (`GREATEST`), and the other fields
are taken only from a heartbeat at least as new as the one Postgres holds (newest wins, as in
the read API's merge).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from flusher.pg_arrays import array_literal
from shared.contract.claims import DEN_WIDTH, KUBIYA_WIDTH, LiveColumns
from shared.postgres.pool import create_pool
from shared.tracing import traced

log = logging.getLogger("hb.flusher")


_NEWER = "(w.last_heartbeat_at IS NULL OR b.hb >= w.last_heartbeat_at)"
_KUBIYA = f"{_NEWER} AND b.ks IS NOT NULL"

# (name, Postgres type, free text) per column of LiveColumns.
_COLUMNS = (
    ("id", "text", False), ("hb", "int8", False), ("act", "int8", False),
    ("iar", "bool", False), ("osc", "int8", False), ("skew", "int8", False),
    ("ks", "text", True), ("kt", "int8", False), ("kc", "text", True), ("ke", "text", True),
    ("km", "text", True), ("si", "text", True), ("dc", "int8", False), ("dr", "text", True),
    ("dx", "int8", False), ("de", "text", True),
)  # fmt: skip
_TIMES = ("hb", "act", "dc")  # epoch ms, converted once in the subquery

# A newer beat's missing session count or activity flag means "not reported, keep the stored
# one"; a missing skew means the newest beat observed none (no client time), so it clears it.
_SET_DEN = f"""
    last_heartbeat_at = GREATEST(w.last_heartbeat_at, b.hb),
    last_active_at = GREATEST(w.last_active_at, b.act),
    is_active_recently = CASE WHEN {_NEWER}
        THEN COALESCE(b.iar, w.is_active_recently) ELSE w.is_active_recently END,
    open_session_count = CASE WHEN {_NEWER}
        THEN COALESCE(b.osc, w.open_session_count) ELSE w.open_session_count END,
    clock_skew_ms = CASE WHEN {_NEWER} THEN b.skew ELSE w.clock_skew_ms END,"""

# A newer beat clears a disconnect (the worker is back). A chunk without the columns beyond
# Den's holds no disconnect in Redis, so for it a newer beat means none.
_CLEAR_DISCONNECT = f"""
    disconnected_at = CASE WHEN {_NEWER} THEN NULL ELSE w.disconnected_at END,
    disconnect_reason = CASE WHEN {_NEWER} THEN NULL ELSE w.disconnect_reason END,
    exit_code = CASE WHEN {_NEWER} THEN NULL ELSE w.exit_code END,
    error_message = CASE WHEN {_NEWER} THEN NULL ELSE w.error_message END,"""

# The per-worker route names no environment and a lightweight beat no system info: both stay
# until a beat names them.
_SET_KUBIYA = f"""
    reported_status = CASE WHEN {_KUBIYA} THEN b.ks ELSE w.reported_status END,
    tasks_processed = CASE WHEN {_KUBIYA} THEN b.kt ELSE w.tasks_processed END,
    current_task_id = CASE WHEN {_KUBIYA} THEN b.kc ELSE w.current_task_id END,
    environment_name = CASE WHEN {_KUBIYA}
        THEN COALESCE(b.ke, w.environment_name) ELSE w.environment_name END,
    worker_metadata = CASE WHEN {_KUBIYA} THEN b.km::jsonb ELSE w.worker_metadata END,
    system_info = CASE WHEN {_NEWER} AND b.si IS NOT NULL
        THEN b.si::jsonb ELSE w.system_info END,
    disconnected_at = CASE WHEN {_NEWER} THEN b.dc ELSE w.disconnected_at END,
    disconnect_reason = CASE WHEN {_NEWER} THEN b.dr ELSE w.disconnect_reason END,
    exit_code = CASE WHEN {_NEWER} THEN b.dx ELSE w.exit_code END,
    error_message = CASE WHEN {_NEWER} THEN b.de ELSE w.error_message END,"""


def _persist_sql(width: int) -> str:
    """The UPDATE for LiveColumns of `width` columns (with or without the Kubiya ones)."""
    columns = _COLUMNS[:width]
    arrays = ", ".join(f"${i}::text::{kind}[]" for i, (_, kind, _) in enumerate(columns, 1))
    names = [name for name, _, _ in columns]
    fields = ", ".join(
        f"to_timestamp({name}::float8 / 1000) AS {name}" if name in _TIMES else name
        for name in names
    )
    extended = width > DEN_WIDTH
    # Rows go by id so that every flusher locks them in one order (a lock cycle between two
    # flushers writing the same workers is then unlikely); a hash with neither a heartbeat nor a
    # disconnect is gone.
    return f"""
UPDATE workers AS w SET{_SET_DEN}{_SET_KUBIYA if extended else _CLEAR_DISCONNECT}
    heartbeat_persisted_at = now()
FROM (
    SELECT {fields}
      FROM unnest({arrays}) AS u({", ".join(names)})
     WHERE hb IS NOT NULL{" OR dc IS NOT NULL" if extended else ""}
     ORDER BY id COLLATE "C"
    OFFSET 0  -- converts each timestamp once, not once per use below
) AS b
WHERE w.id = b.id AND w.deleted_at IS NULL
  AND ({_NEWER} OR b.act > COALESCE(w.last_active_at, '-infinity'))
"""


PERSIST_SQL = _persist_sql(DEN_WIDTH)
PERSIST_KUBIYA_SQL = _persist_sql(KUBIYA_WIDTH)

# The flusher's connections plan PERSIST_SQL as one primary-key probe per row. Knowing a chunk's
# size, the planner would rather hash or merge-join the whole table for every chunk (twice the
# time on 100,000 workers, growing with the table); without these settings a connection plans
# its first five chunks that way before Postgres settles on a generic plan, which probes.
# Nothing else the flusher runs has a join.
PLANNER_SETTINGS = {"enable_mergejoin": "off", "enable_hashjoin": "off"}


async def create_flusher_pool(
    database_url: str, min_size: int = 1, max_size: int = 4
) -> asyncpg.Pool:
    """A pool for `persist_rows` (and the rest of the flusher), planned as it needs."""
    return await create_pool(database_url, min_size, max_size, server_settings=PLANNER_SETTINGS)


# Two flushers may write the same rows at once (a lease re-claimed while the first still writes);
# Postgres then breaks a lock cycle by failing one statement, which is safe to run again.
_DEADLOCK_RETRIES = 3


@traced("UPDATE workers", store="postgres")
async def persist_batch(pool: asyncpg.Pool, live: LiveColumns) -> int:
    """Write one chunk of workers' hot fields; returns the rows Postgres updated (deleted or
    unknown workers and beats older than what Postgres holds are not written).

    A value Postgres refuses (a NUL in text, a number out of range) must not stall every other
    worker of the chunk forever: the chunk is split until the offending row stands alone, and
    that row is logged and skipped."""
    if not len(live):
        return 0
    sql = PERSIST_KUBIYA_SQL if live.has_kubiya else PERSIST_SQL
    for attempt in range(_DEADLOCK_RETRIES):
        try:
            arrays = [
                array_literal(column, quote=text)
                for column, (_, _, text) in zip(live.columns, _COLUMNS, strict=False)
            ]
            status = await pool.execute(sql, *arrays)
            break
        except asyncpg.DeadlockDetectedError:
            if attempt == _DEADLOCK_RETRIES - 1:
                raise
        except (asyncpg.DataError, ValueError) as exc:
            if len(live) == 1:
                worker = live.ids[0].decode(errors="replace")
                log.error("skipped worker %s: Postgres refused its values: %s", worker, exc)
                return 0
            half = len(live) // 2
            return await persist_batch(pool, live.slice(0, half)) + await persist_batch(
                pool, live.slice(half, len(live))
            )
    return int(status.rpartition(" ")[2])


async def persist_rows(pool: asyncpg.Pool, live: LiveColumns, chunk: int, parallel: int = 2) -> int:
    """`persist_batch` over chunks of `chunk` workers, `parallel` of them at a time."""
    chunks = [live.slice(i, i + chunk) for i in range(0, len(live), chunk)]
    written = 0
    for i in range(0, len(chunks), parallel):
        batch = (persist_batch(pool, c) for c in chunks[i : i + parallel])
        # Let every chunk finish before failing, so none is still writing after a release.
        for result in await asyncio.gather(*batch, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result
            written += result
    return written
