"""The registry: which workers and API keys ingest accepts, kept in Redis from Postgres.

The API writes an entry on every change (Postgres first); the flusher's reconcile rebuilds them
all through `sync_calls` (`scripts/sync_registry.lua`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

from redis.asyncio import Redis

from shared.contract import keys
from shared.contract.lua_scripts import load_script
from shared.redis.lua import ScriptCall, run_pipelined

SYNC_REGISTRY = load_script("sync_registry")
UNREGISTER_WORKERS = load_script("unregister_workers")


async def register_worker(
    redis: Redis, shards: int, worker_id: str, org_id: str, token_version: int
) -> None:
    """Create or update a worker's registry entry; beats for it are accepted from then on.

    Through the sync script, so the token version only rises: of two rotations whose writes
    reach Redis out of order, the newer version stays."""
    entry = RegistryEntry(worker_id, org_id, token_version, None, None)
    await run_pipelined(redis, SYNC_REGISTRY, sync_calls([entry], shards))


async def unregister_worker(redis: Redis, shards: int, worker_id: str) -> None:
    """Forget a deleted worker: ingest answers 404 for it from now on."""
    await unregister_workers(redis, shards, [worker_id])


async def unregister_workers(redis: Redis, shards: int, worker_ids: Iterable[str]) -> None:
    """Remove the workers' entries, dirty marks and fleet index entries (one call per shard)."""
    by_shard: dict[int, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for worker_id in worker_ids:
        shard = keys.shard_of(worker_id, shards)
        call_keys, args = by_shard[shard]
        call_keys += (keys.worker_prefix(shard) + worker_id, keys.dirty_key(shard))
        args.append(worker_id)
    if by_shard:
        await run_pipelined(redis, UNREGISTER_WORKERS, list(by_shard.values()))


async def register_api_key(redis: Redis, key_hash: str, org_id: str) -> None:
    await redis.execute_command("HSET", keys.API_KEYS, key_hash, org_id)


async def revoke_api_key(redis: Redis, key_hash: str) -> None:
    await redis.execute_command("HDEL", keys.API_KEYS, key_hash)


async def api_key_org(redis: Redis, key_hash: str) -> str | None:
    org = await redis.execute_command("HGET", keys.API_KEYS, key_hash)
    return org.decode() if isinstance(org, bytes) else org


class RegistryEntry(NamedTuple):
    """A live worker as Postgres holds it."""

    worker_id: str
    org_id: str
    token_version: int
    heartbeat_ms: int | None  # persisted, restored into a hash that lost it
    active_ms: int | None
    # A disconnect Postgres holds at or after that heartbeat: ms, reason, exit code, message.
    disconnect: tuple[int, str, int | None, str | None] | None = None


def sync_calls(entries: Iterable[RegistryEntry], shards: int) -> list[ScriptCall]:
    """SYNC_REGISTRY calls for `entries`, one per shard (each touches one slot)."""
    by_shard: dict[int, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for e in entries:
        call_keys, args = by_shard[keys.shard_of(e.worker_id, shards)]
        call_keys.append(keys.worker_key(e.worker_id, shards))
        hb, act = e.heartbeat_ms, e.active_ms
        args += (e.org_id, str(e.token_version), "" if hb is None else str(hb),
                 "" if act is None else str(act))  # fmt: skip
        if e.disconnect is None:
            args += ("", "", "", "")
        else:
            at, reason, code, message = e.disconnect
            args += (str(at), reason, "" if code is None else str(code), message or "")
    return list(by_shard.values())


async def mark_synced(redis: Redis, shards: int) -> None:
    """The registry is complete: every shard's mark (read by ingest's record script) and the
    flusher's own."""
    pipe = redis.pipeline(transaction=False)
    for shard in range(shards):
        pipe.set(keys.synced_key(shard), "1")
    pipe.set(keys.REGISTRY_SYNCED, "1")
    await pipe.execute()


async def registry_lost(redis: Redis, shards: int) -> bool:
    """True when a mark of the last reconcile is missing: Redis lost its data, never had a
    sync, or was synced by a version that wrote no shard marks."""
    pipe = redis.pipeline(transaction=False)
    pipe.exists(keys.REGISTRY_SYNCED)
    for shard in range(shards):
        pipe.exists(keys.synced_key(shard))
    return not all(await pipe.execute())
