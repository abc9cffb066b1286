"""Rebuilding the Redis registry from Postgres, the source of truth.

The API writes the registry on every change, but a change made while Redis was unreachable, or a
Redis that lost its data, leaves it behind; this repairs both. Postgres is read before Redis is
written and deletions are read after, so a change the API makes meanwhile is never undone: the
API always writes Postgres first, then Redis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from shared.contract import keys, registry
from shared.contract.claims import RETURN_LEGACY_CLAIMS, legacy_claims_call, parse_legacy_returned
from shared.contract.registry import SYNC_REGISTRY, RegistryEntry, sync_calls
from shared.contract.times import now_ms
from shared.redis.lua import run_pipelined
from shared.settings import Settings

log = logging.getLogger("hb.flusher.reconcile")

_LIVE_WORKERS = """
SELECT id, org_id, token_version,
       floor(extract(epoch FROM last_heartbeat_at) * 1000)::int8 AS hb,
       floor(extract(epoch FROM last_active_at) * 1000)::int8 AS act,
       floor(extract(epoch FROM disconnected_at) * 1000)::int8 AS dc,
       disconnect_reason, exit_code, error_message
  FROM workers WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2
"""
_DELETED_WORKERS = (
    "SELECT id FROM workers WHERE deleted_at IS NOT NULL AND id > $1 ORDER BY id LIMIT $2"
)
_ACTIVE_KEYS = "SELECT key_hash, org_id FROM api_keys WHERE revoked_at IS NULL"


@dataclass(frozen=True)
class Reconciled:
    workers: int
    deleted_workers: int
    api_keys: int
    removed_api_keys: int
    legacy_claims_returned: int = 0


def _gone(row: asyncpg.Record) -> tuple[int, str, int | None, str | None] | None:
    """The row's disconnect, if it is at or after the row's heartbeat (a later beat, once
    persisted, clears it)."""
    dc, hb = row["dc"], row["hb"]
    if dc is None or (hb is not None and dc < hb):
        return None
    return dc, row["disconnect_reason"] or "", row["exit_code"], row["error_message"]


async def _sync_workers(redis: Redis, pool: asyncpg.Pool, shards: int, batch: int) -> int:
    count, after = 0, ""
    while rows := await pool.fetch(_LIVE_WORKERS, after, batch):
        entries = (
            RegistryEntry(r["id"], r["org_id"], r["token_version"], r["hb"], r["act"], _gone(r))
            for r in rows
        )
        await run_pipelined(redis, SYNC_REGISTRY, sync_calls(entries, shards))
        count += len(rows)
        after = rows[-1]["id"]
    return count


async def _remove_deleted_workers(redis: Redis, pool: asyncpg.Pool, shards: int, batch: int) -> int:
    count, after = 0, ""
    while rows := await pool.fetch(_DELETED_WORKERS, after, batch):
        await registry.unregister_workers(redis, shards, [r["id"] for r in rows])
        count += len(rows)
        after = rows[-1]["id"]
    return count


async def _sync_api_keys(redis: Redis, pool: asyncpg.Pool) -> tuple[int, int]:
    # Anything in Redis now that Postgres no longer lists as active afterwards was revoked or
    # deleted; keys created meanwhile aren't in `before`, so they can't be removed by mistake.
    before = {k.decode() for k in await redis.execute_command("HKEYS", keys.API_KEYS)}
    active = {r["key_hash"]: r["org_id"] for r in await pool.fetch(_ACTIVE_KEYS)}
    if active:
        pairs = [item for pair in active.items() for item in pair]
        await redis.execute_command("HSET", keys.API_KEYS, *pairs)
    still_active = {r["key_hash"] for r in await pool.fetch(_ACTIVE_KEYS)}
    gone = (before | active.keys()) - still_active
    if gone:
        await redis.execute_command("HDEL", keys.API_KEYS, *gone)
    return len(active), len(gone)


async def _return_legacy_claims(redis: Redis, shards: int) -> int:
    now = now_ms()
    calls = [legacy_claims_call(s, now) for s in range(shards)]
    replies = await run_pipelined(redis, RETURN_LEGACY_CLAIMS, calls)
    return sum(parse_legacy_returned(n) for n in replies)


async def reconcile_registry(
    redis: Redis, pool: asyncpg.Pool, settings: Settings, batch: int = 10_000
) -> Reconciled:
    """Bring the Redis registry (workers, token versions, deletions, API keys) in line with
    Postgres, and restore the persisted heartbeats into hashes that lost them."""
    workers = await _sync_workers(redis, pool, settings.shards, batch)
    deleted = await _remove_deleted_workers(redis, pool, settings.shards, batch)
    keys, removed = await _sync_api_keys(redis, pool)
    legacy = await _return_legacy_claims(redis, settings.shards)
    await registry.mark_synced(redis, settings.shards)
    result = Reconciled(workers, deleted, keys, removed, legacy)
    log.info("registry reconciled from Postgres: %s", result)
    return result
