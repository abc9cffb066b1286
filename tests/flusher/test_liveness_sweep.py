"""The liveness sweep, at chosen instants (`now`): default thresholds, 75 s and 150 s."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from flusher.liveness_sweep import delete_expired_events, sweep_liveness, write_pending
from shared.contract import keys
from shared.contract.events import SWEEP_LIVENESS, sweep_call
from shared.contract.times import now_ms
from shared.redis.lua import run_pipelined
from tests.flusher.conftest import add_worker, den_beat

STALE, OFFLINE = 75_000, 150_000


async def liveness_events(pool, worker_id=None) -> list[tuple[str, str, int]]:
    rows = await pool.fetch(
        "SELECT type, worker_id, floor(extract(epoch FROM at) * 1000)::int8 AS at, data"
        " FROM events WHERE type NOT IN ('worker.created', 'worker.deleted')"
        " AND ($1::text IS NULL OR worker_id = $1) ORDER BY id",
        worker_id,
    )
    return [(r["type"], r["worker_id"], r["at"]) for r in rows]


async def test_each_transition_is_announced_once_in_order(ingest, pool, redis, settings):
    worker = await add_worker(pool, redis, settings)
    t = (
        now_ms() - 2 * OFFLINE
    )  # simulated instants in the past, so beats can be sent at any of them
    await sweep_liveness(redis, pool, settings, t)  # the first sweep sets the watermark
    await den_beat(ingest, worker, t)

    await sweep_liveness(redis, pool, settings, t + 1000)
    await sweep_liveness(redis, pool, settings, t + 2000)  # nothing new
    await sweep_liveness(redis, pool, settings, t + STALE + 10)
    await sweep_liveness(redis, pool, settings, t + OFFLINE + 10)
    await sweep_liveness(redis, pool, settings, t + OFFLINE + 20)
    assert await liveness_events(pool) == [
        ("worker.online", worker.id, t),
        ("worker.stale", worker.id, t + STALE),
        ("worker.offline", worker.id, t + OFFLINE),
    ]
    data = await pool.fetchval("SELECT data FROM events WHERE type = 'worker.stale'")
    assert json.loads(data)["previous"] == "online"

    # Back: a beat, then the next sweep.
    back = t + OFFLINE + 30
    await den_beat(ingest, worker, back)
    await sweep_liveness(redis, pool, settings, back + 10)
    events = await liveness_events(pool)
    assert [e[0] for e in events] == ["worker.online", "worker.stale", "worker.offline",
                                      "worker.online"]  # fmt: skip


async def test_a_late_sweep_announces_both_thresholds_crossed(ingest, pool, redis, settings):
    worker = await add_worker(pool, redis, settings)
    t = (
        now_ms() - 2 * OFFLINE
    )  # simulated instants in the past, so beats can be sent at any of them
    await sweep_liveness(redis, pool, settings, t)
    await den_beat(ingest, worker, t)
    await sweep_liveness(redis, pool, settings, t + 10)

    await sweep_liveness(redis, pool, settings, t + OFFLINE + 1000)

    assert [e[0] for e in await liveness_events(pool)] == [
        "worker.online", "worker.stale", "worker.offline",
    ]  # fmt: skip


async def test_an_old_beat_does_not_bring_a_worker_online(ingest, pool, redis, settings):
    worker = await add_worker(pool, redis, settings)
    t = (
        now_ms() - 2 * OFFLINE
    )  # simulated instants in the past, so beats can be sent at any of them
    await sweep_liveness(redis, pool, settings, t)
    await den_beat(ingest, worker, t - OFFLINE - 1000)  # sent long ago, arrives now
    await sweep_liveness(redis, pool, settings, t + 10)
    assert await liveness_events(pool) == []


async def test_two_flushers_sweeping_together_announce_each_transition_once(
    ingest, pool, redis, redis_url, settings
):
    workers = [await add_worker(pool, redis, settings) for _ in range(30)]
    t = (
        now_ms() - 2 * OFFLINE
    )  # simulated instants in the past, so beats can be sent at any of them
    await sweep_liveness(redis, pool, settings, t)
    for w in workers:
        await den_beat(ingest, w, t)
    other = Redis.from_url(redis_url)
    try:
        for now in (t + 100, t + STALE + 100, t + OFFLINE + 100):
            await asyncio.gather(
                sweep_liveness(redis, pool, settings, now),
                sweep_liveness(other, pool, settings, now),
            )
    finally:
        await other.aclose()

    events = await liveness_events(pool)
    assert len(events) == len(set(events)) == 90
    assert {e[0] for e in events} == {"worker.online", "worker.stale", "worker.offline"}


async def test_events_a_flusher_found_but_did_not_write_are_written_by_the_next_sweep(
    ingest, pool, redis, settings
):
    worker = await add_worker(pool, redis, settings)
    t = (
        now_ms() - 2 * OFFLINE
    )  # simulated instants in the past, so beats can be sent at any of them
    await sweep_liveness(redis, pool, settings, t)
    await den_beat(ingest, worker, t)
    # A flusher runs the script and dies before writing to Postgres.
    shard = keys.shard_of(worker.id, settings.shards)
    calls = [sweep_call(shard, [worker.org_id], t + 10, STALE, OFFLINE)]
    found = await run_pipelined(redis, SWEEP_LIVENESS, calls)
    assert len(found[0]) == 1
    assert await liveness_events(pool) == []

    await sweep_liveness(redis, pool, settings, t + 20)

    assert await liveness_events(pool) == [("worker.online", worker.id, t)]
    assert await redis.zcard(keys.pending_events_key(shard)) == 0
    # Written again (another flusher had read it too): still one row.
    await redis.zadd(keys.pending_events_key(shard), {found[0][0]: t})
    assert await write_pending(redis, pool, settings.shards) == 1
    assert len(await liveness_events(pool)) == 1


async def test_created_and_deleted_workers_are_events_and_a_deleted_one_goes_quiet(
    ingest, pool, redis, settings
):
    from shared.contract import registry

    worker = await add_worker(pool, redis, settings)
    t = (
        now_ms() - 2 * OFFLINE
    )  # simulated instants in the past, so beats can be sent at any of them
    await sweep_liveness(redis, pool, settings, t)
    await den_beat(ingest, worker, t)
    await sweep_liveness(redis, pool, settings, t + 10)
    await pool.execute("UPDATE workers SET deleted_at = now() WHERE id = $1", worker.id)
    await registry.unregister_worker(redis, settings.shards, worker.id)

    await sweep_liveness(redis, pool, settings, t + OFFLINE + 10)

    types = [r["type"] for r in await pool.fetch("SELECT type FROM events ORDER BY id")]
    assert types == ["worker.created", "worker.online", "worker.deleted"]


async def test_events_older_than_the_retention_are_deleted(ingest, pool, redis, settings):
    await add_worker(pool, redis, settings)
    await pool.execute("UPDATE events SET at = now() - interval '2 hours'")
    await add_worker(pool, redis, settings)
    assert await delete_expired_events(pool, 3600) == 1
    assert await pool.fetchval("SELECT count(*) FROM events") == 1


async def _disconnect(ingest, worker) -> None:
    r = await ingest.post(
        f"/api/v1/workers/{worker.id}/disconnect",
        json={"reason": "shutdown", "exit_code": 0},
        headers={"Authorization": f"Bearer {worker.token}"},
    )
    assert r.status_code == 204, r.text


async def test_a_disconnect_is_announced_offline_once_and_the_next_beat_online(
    ingest, pool, redis, settings
):
    worker = await add_worker(pool, redis, settings)
    t = now_ms() - 2 * OFFLINE
    await sweep_liveness(redis, pool, settings, t)
    await den_beat(ingest, worker, t)
    await sweep_liveness(redis, pool, settings, t + 10)

    await _disconnect(ingest, worker)
    key = keys.worker_key(worker.id, settings.shards)
    stamped = int(await redis.hget(key, keys.F_DISCONNECTED))
    await sweep_liveness(redis, pool, settings, t + 20)
    # Its heartbeat ages past both thresholds later: it was announced offline already.
    await sweep_liveness(redis, pool, settings, t + OFFLINE + 100)
    assert await liveness_events(pool) == [
        ("worker.online", worker.id, t),
        ("worker.offline", worker.id, stamped),
    ]
    data = await pool.fetchval("SELECT data FROM events WHERE type = 'worker.offline'")
    assert json.loads(data)["previous"] == "online"

    await den_beat(ingest, worker, now_ms())
    await sweep_liveness(redis, pool, settings, now_ms())
    assert [e[0] for e in await liveness_events(pool)] == [
        "worker.online", "worker.offline", "worker.online",
    ]  # fmt: skip


async def test_a_worker_that_disconnects_before_any_beat_is_announced_offline(
    ingest, pool, redis, settings
):
    worker = await add_worker(pool, redis, settings)
    await sweep_liveness(redis, pool, settings)
    await _disconnect(ingest, worker)
    await sweep_liveness(redis, pool, settings)
    await sweep_liveness(redis, pool, settings)

    assert [e[0] for e in await liveness_events(pool)] == ["worker.offline"]
    data = json.loads(await pool.fetchval("SELECT data FROM events WHERE type = 'worker.offline'"))
    assert data == {"previous": "never", "lastHeartbeatAt": None}
