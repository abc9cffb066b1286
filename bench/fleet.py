"""A fleet of registered workers with valid tokens, written straight into the hot store."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import asyncpg
from redis import Redis

from bench.servers import TOKEN_KEYS, embedded_redis, workdir
from shared.contract import keys, typeid
from shared.contract.record import RECORD_HEARTBEATS, DenBeat, record_call
from shared.contract.tokens import hash_secret, issue_worker_token, new_api_key
from shared.settings import parse_token_keys


@dataclass(frozen=True)
class Fleet:
    org_id: str
    worker_ids: list[str]
    tokens: list[str]


def new_fleet(size: int, token_keys: str, org_id: str | None = None) -> Fleet:
    keyring = parse_token_keys(token_keys)
    kid = next(iter(keyring))
    ids = [typeid.new_id(typeid.WORKER) for _ in range(size)]
    tokens = [issue_worker_token(keyring, kid, worker_id, 1) for worker_id in ids]
    return Fleet(org_id or typeid.new_id(typeid.ORG), ids, tokens)


def register_fleet(redis_url: str, fleet: Fleet, shards: int) -> None:
    """What `registry.register_worker` writes, pipelined: one round trip per 1,000 workers."""
    client = Redis.from_url(redis_url)
    try:
        for start in range(0, len(fleet.worker_ids), 1000):
            pipe = client.pipeline(transaction=False)
            for worker_id in fleet.worker_ids[start : start + 1000]:
                pipe.hset(
                    keys.worker_key(worker_id, shards),
                    mapping={keys.F_ORG: fleet.org_id, keys.F_TOKEN_VERSION: "1"},
                )
            pipe.execute()
    finally:
        client.close()


def registered_on_own_redis(
    stack: contextlib.ExitStack, workers: int, shards: int
) -> tuple[Redis, Fleet]:
    """A redis-server of the figure's own (stopped with `stack`), a client of it, and a fleet of
    `workers` registered there."""
    directory = stack.enter_context(workdir())
    server = stack.enter_context(embedded_redis(directory))
    client = Redis.from_url(server.url)
    stack.callback(client.close)
    fleet = new_fleet(workers, TOKEN_KEYS)
    register_fleet(server.url, fleet, shards)
    return client, fleet


def register_org_api_key(redis_url: str, fleet: Fleet) -> str:
    """A new API key of the fleet's org, as `registry.register_api_key` writes it."""
    key = new_api_key()
    client = Redis.from_url(redis_url)
    try:
        client.hset(keys.API_KEYS, hash_secret(key), fleet.org_id)
    finally:
        client.close()
    return key


def den_beat(worker_id: str, heartbeat_ms: int) -> DenBeat:
    """One active Den beat with one open session."""
    return DenBeat(worker_id, 1, heartbeat_ms, heartbeat_ms, True, 1, None)


def beat_fleet(
    redis_url: str, fleet: Fleet, shards: int, heartbeat_ms: int, persist_ms: int
) -> int:
    """One Den beat per worker through the contract's script, one call per shard and 500 beats.

    Returns the number of script calls made.
    """
    client = Redis.from_url(redis_url)
    record = client.register_script(RECORD_HEARTBEATS.source)
    by_shard: dict[int, list[str]] = {}
    for worker_id in fleet.worker_ids:
        by_shard.setdefault(keys.shard_of(worker_id, shards), []).append(worker_id)
    calls = 0
    try:
        for ids in by_shard.values():
            for start in range(0, len(ids), 500):
                beats = [den_beat(w, heartbeat_ms) for w in ids[start : start + 500]]
                call_keys, args = record_call(beats, shards, heartbeat_ms, persist_ms)
                record(keys=call_keys, args=args)
                calls += 1
    finally:
        client.close()
    return calls


async def insert_fleet_rows(pool: asyncpg.Pool, fleet: Fleet, with_instances: bool) -> None:
    """The fleet's org and worker rows (and one instance each), in a few bulk statements."""
    await pool.execute(
        "INSERT INTO organizations (id, name) VALUES ($1, 'bench') ON CONFLICT DO NOTHING",
        fleet.org_id,
    )
    names = [f"worker-{i:06d}" for i in range(len(fleet.worker_ids))]
    await pool.execute(
        "INSERT INTO workers (id, org_id, name, status, created_at)"
        " SELECT id, $2, name, 'healthy', now() - n * interval '1 second'"
        " FROM unnest($1::text[], $3::text[]) WITH ORDINALITY AS t (id, name, n)",
        fleet.worker_ids, fleet.org_id, names,
    )  # fmt: skip
    if with_instances:
        instance_ids = [typeid.new_id(typeid.INSTANCE) for _ in fleet.worker_ids]
        await pool.execute(
            "INSERT INTO worker_instances (id, worker_id, provider, region, url, status)"
            " SELECT id, worker_id, 'daytona', 'eu-west-1', 'https://' || id || '.example.com',"
            " 'running' FROM unnest($1::text[], $2::text[]) AS t (id, worker_id)",
            instance_ids, fleet.worker_ids,
        )  # fmt: skip
    await pool.execute("ANALYZE")  # the planner's statistics of a database in steady state
