"""The API's /metrics shows how far persistence is behind, from the hot store."""

from __future__ import annotations

import re

import httpx
from redis.asyncio import Redis

from shared.contract import keys, typeid
from shared.contract.times import now_ms
from shared.settings import Settings


def gauge(body: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", body, re.M)
    assert match, f"{name} missing from:\n{body}"
    return float(match.group(1))


async def test_flush_lag_is_the_age_of_the_oldest_dirty_worker(
    api: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    old, new = typeid.new_id(typeid.WORKER), typeid.new_id(typeid.WORKER)
    shard_old, shard_new = (keys.shard_of(w, settings.shards) for w in (old, new))
    await redis.zadd(keys.dirty_key(shard_old), {old: now_ms() - 30_000})
    await redis.zadd(keys.dirty_key(shard_new), {new: now_ms()})
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert gauge(response.text, "hb_redis_up") == 1
    assert gauge(response.text, "hb_flush_lag_seconds") >= 30
    assert gauge(response.text, "hb_dirty_workers") == 2


async def test_nothing_dirty_means_no_lag(api: httpx.AsyncClient) -> None:
    body = (await api.get("/metrics")).text
    assert gauge(body, "hb_flush_lag_seconds") == 0
    assert gauge(body, "hb_dirty_workers") == 0


async def test_rows_persisted_by_all_flushers_are_counted(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    await redis.incrby(keys.ROWS_PERSISTED, 7)
    body = (await api.get("/metrics")).text
    assert gauge(body, "hb_rows_persisted_total") == 7


async def test_workers_claimed_by_a_flusher_are_counted_until_acked(
    api: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    from flusher.claims import ack_claims, claim_shards

    ids = [typeid.new_id(typeid.WORKER) for _ in range(5)]
    for worker_id in ids:
        await redis.zadd(keys.dirty_key(keys.shard_of(worker_id, settings.shards)),
                         {worker_id: now_ms()})  # fmt: skip
    claims = await claim_shards(redis, range(settings.shards), 10, 60)
    body = (await api.get("/metrics")).text
    assert (gauge(body, "hb_inflight_workers"), gauge(body, "hb_dirty_workers")) == (5, 0)

    await ack_claims(redis, claims)
    assert gauge((await api.get("/metrics")).text, "hb_inflight_workers") == 0


async def test_the_flush_lag_counts_workers_a_flusher_holds(
    api: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    from flusher.claims import claim_shards

    worker_id = typeid.new_id(typeid.WORKER)
    shard = keys.shard_of(worker_id, settings.shards)
    await redis.zadd(keys.dirty_key(shard), {worker_id: now_ms() - 30_000})
    await claim_shards(redis, [shard], 10, 60)  # a flusher took it and is still writing

    body = (await api.get("/metrics")).text
    assert gauge(body, "hb_dirty_workers") == 0
    assert gauge(body, "hb_flush_lag_seconds") >= 30
