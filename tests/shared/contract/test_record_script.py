"""The record script against a real Redis: what a beat writes, and what it costs Redis."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from shared.contract import keys
from shared.contract.record import (
    RECORD_HEARTBEATS,
    Beat,
    BeatResult,
    DenBeat,
    KubiyaBeat,
    WorkerBeat,
    parse_results,
    record_call,
)
from shared.settings import Settings
from tests.conftest import RegisteredWorker, register

PERSIST_MS = 60_000
T0 = 1_700_000_000_000


async def record(redis: Redis, settings: Settings, *beats: Beat, now: int = T0) -> list[BeatResult]:
    reply = await RECORD_HEARTBEATS(redis, *record_call(beats, settings.shards, now, PERSIST_MS))
    return parse_results(reply, len(beats))


def den(worker: RegisteredWorker, at: int, sessions: int = 1) -> DenBeat:
    return DenBeat(worker.id, worker.version, at, at, True, sessions, None)


def shard(worker: RegisteredWorker, settings: Settings) -> int:
    return keys.shard_of(worker.id, settings.shards)


async def fields(redis: Redis, worker: RegisteredWorker, settings: Settings) -> dict[str, str]:
    raw = await redis.hgetall(keys.worker_key(worker.id, settings.shards))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def commands(redis: Redis) -> dict[str, int]:
    stats: dict[str, Any] = await redis.info("commandstats")
    skip = {"evalsha", "info", "config"}
    counts = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return {name: n for name, n in counts.items() if name not in skip}


async def test_a_steady_den_beat_reads_once_writes_once_and_raises_its_index(redis, settings):
    worker = await register(redis, settings)
    assert [r.code for r in await record(redis, settings, den(worker, T0))] == [200]
    # What the flusher and the liveness sweep leave: persisted just now, announced online.
    await redis.hset(
        keys.worker_key(worker.id, settings.shards),
        mapping={keys.F_PERSISTED: str(T0), keys.F_ANNOUNCED: "online"},
    )
    await redis.delete(
        keys.dirty_key(shard(worker, settings)), keys.revived_key(shard(worker, settings))
    )
    await redis.config_resetstat()

    [result] = await record(redis, settings, den(worker, T0 + 30_000), now=T0 + 30_000)

    assert result.code == 200 and result.heartbeat_ms == str(T0 + 30_000).encode()
    # The same sessions and activity: no dirty mark before the persist interval, no revival.
    assert await commands(redis) == {"hmget": 1, "hset": 1, "zadd": 1}
    seen = keys.seen_key(shard(worker, settings), worker.org_id)
    assert await redis.zscore(seen, worker.id) == T0 + 30_000
    assert await redis.zcard(keys.dirty_key(shard(worker, settings))) == 0
    assert await redis.zcard(keys.revived_key(shard(worker, settings))) == 0


async def test_a_beat_due_a_flush_or_with_a_change_marks_the_worker_dirty(redis, settings):
    worker = await register(redis, settings)
    await record(redis, settings, den(worker, T0))
    dirty = keys.dirty_key(shard(worker, settings))
    await redis.hset(keys.worker_key(worker.id, settings.shards), keys.F_PERSISTED, str(T0))
    await redis.delete(dirty)

    await record(redis, settings, den(worker, T0 + 1_000), now=T0 + 1_000)
    assert await redis.zcard(dirty) == 0
    await record(redis, settings, den(worker, T0 + 2_000, sessions=2), now=T0 + 2_000)
    assert await redis.zscore(dirty, worker.id) == T0 + 2_000
    await redis.delete(dirty)
    await record(redis, settings, den(worker, T0 + PERSIST_MS), now=T0 + PERSIST_MS)
    assert await redis.zscore(dirty, worker.id) == T0 + PERSIST_MS


async def test_an_older_beat_moves_neither_the_index_nor_the_revived_set(redis, settings):
    worker = await register(redis, settings)
    await record(redis, settings, den(worker, T0 + 5_000))
    seen = keys.seen_key(shard(worker, settings), worker.org_id)
    revived = keys.revived_key(shard(worker, settings))
    await redis.delete(revived)

    [result] = await record(redis, settings, den(worker, T0 + 1_000, sessions=9))

    assert result.code == 200 and result.heartbeat_ms == str(T0 + 5_000).encode()
    assert await redis.zscore(seen, worker.id) == T0 + 5_000
    assert await redis.zcard(revived) == 0
    stored = await fields(redis, worker, settings)
    assert stored[keys.F_HEARTBEAT] == str(T0 + 5_000) and stored[keys.F_OPEN_SESSIONS] == "1"


async def test_the_revived_set_keeps_the_first_beat_until_the_sweep_takes_it(redis, settings):
    worker = await register(redis, settings)
    revived = keys.revived_key(shard(worker, settings))
    await record(redis, settings, den(worker, T0), den(worker, T0 + 1_000))
    await record(redis, settings, den(worker, T0 + 2_000))
    assert await redis.zrange(revived, 0, -1, withscores=True) == [(worker.id.encode(), T0)]
    assert (await fields(redis, worker, settings))[keys.F_HEARTBEAT] == str(T0 + 2_000)

    await redis.delete(revived)
    await redis.hset(keys.worker_key(worker.id, settings.shards), keys.F_ANNOUNCED, "online")
    await record(redis, settings, den(worker, T0 + 3_000))
    assert await redis.zcard(revived) == 0


async def test_unchanged_kubiya_fields_are_not_counted_as_a_change(redis, settings):
    worker = await register(redis, settings)
    beat = KubiyaBeat(worker.id, worker.version, None, T0, "idle", 3, "t1", "prod", "{}")
    await record(redis, settings, beat)
    dirty = keys.dirty_key(shard(worker, settings))
    await redis.hset(keys.worker_key(worker.id, settings.shards), keys.F_PERSISTED, str(T0))
    await redis.delete(dirty)

    await record(redis, settings, beat._replace(heartbeat_ms=T0 + 1_000, tasks_processed=4))
    assert await redis.zcard(dirty) == 0
    stored = await fields(redis, worker, settings)
    assert (stored[keys.F_TASKS], stored[keys.F_TASK_ID]) == ("4", "t1")

    await record(redis, settings, beat._replace(heartbeat_ms=T0 + 2_000, current_task_id=None))
    assert await redis.zcard(dirty) == 1
    assert keys.F_TASK_ID not in await fields(redis, worker, settings)


async def test_a_full_beat_sent_again_appends_its_log_lines_once(redis, settings):
    worker = await register(redis, settings)
    beat = WorkerBeat(
        worker.id, worker.version, None, T0, "idle", 1, None, "{}", None, ["a", "b"],
        logs_id="first",
    )  # fmt: skip
    logs = keys.logs_key(worker.id, settings.shards)

    for _ in range(2):  # the same beat twice: its reply was lost, and it was sent again
        assert [r.code for r in await record(redis, settings, beat)] == [200]
    assert await redis.lrange(logs, 0, -1) == [b"a", b"b"]

    later = beat._replace(heartbeat_ms=T0 + 1_000, logs=["c"], logs_id="second")
    await record(redis, settings, later)
    assert await redis.lrange(logs, 0, -1) == [b"a", b"b", b"c"]

    unnamed = beat._replace(heartbeat_ms=T0 + 2_000, logs=["d"], logs_id="")
    for _ in range(2):  # lines without an id are appended each time
        await record(redis, settings, unnamed)
    assert await redis.lrange(logs, 0, -1) == [b"a", b"b", b"c", b"d", b"d"]
    assert (await fields(redis, worker, settings))[keys.F_LOG_BYTES] == "5"
