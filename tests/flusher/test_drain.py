import asyncio
import json
import random

from flusher.claims import ack_claims, claim_dirty
from flusher.drain import drain_all, drain_shard
from flusher.persist import persist_batch
from shared.contract import keys, registry
from shared.contract.claims import LiveColumns
from shared.contract.times import from_ms, now_ms
from shared.postgres.pool import create_pool
from shared.redis.connect import connect_redis
from tests.conftest import make_settings
from tests.flusher.conftest import add_worker, den_beat, kubiya_beat, persisted

HOUR = 3_600_000


async def dirty_and_inflight(redis, settings) -> int:
    total = 0
    for shard in range(settings.shards):
        total += await redis.zcard(keys.dirty_key(shard))
        total += keys.inflight_workers(await redis.hkeys(keys.claims_key(shard)))
    return total


async def test_flush_persists_exactly_the_maxima_sent(ingest, redis, pool, settings):
    base = now_ms() - HOUR
    worker = await add_worker(pool, redis, settings)
    await den_beat(ingest, worker, base + 3000, isActiveRecently=True, openSessionCount=2,
                   lastActivityAt=None)  # fmt: skip
    await den_beat(ingest, worker, base + 1000, isActiveRecently=True, openSessionCount=9)
    await den_beat(ingest, worker, base + 2000, isActiveRecently=False, openSessionCount=7)

    assert await drain_all(redis, pool, settings) == 1

    row = await persisted(pool, worker.id)
    assert row["last_heartbeat_at"] == base + 3000
    assert row["last_active_at"] == base + 3000
    # The older beats lost: the fields of the newest beat are the ones kept.
    assert row["is_active_recently"] is True
    assert row["open_session_count"] == 2
    assert row["clock_skew_ms"] is not None and row["clock_skew_ms"] < 0
    assert row["heartbeat_persisted_at"] is not None
    assert await dirty_and_inflight(redis, settings) == 0


async def test_kubiya_fields_are_persisted_and_a_missing_task_id_becomes_null(
    ingest, redis, pool, settings
):
    worker = await add_worker(pool, redis, settings)
    await kubiya_beat(ingest, worker, status="busy", tasks_processed=4, current_task_id="t-1",
                      worker_metadata={"zone": "a", "gpu": 1})  # fmt: skip
    await drain_all(redis, pool, settings)
    row = await persisted(pool, worker.id)
    assert (row["reported_status"], row["tasks_processed"], row["current_task_id"]) == (
        "busy", 4, "t-1",
    )  # fmt: skip
    assert json.loads(row["worker_metadata"]) == {"zone": "a", "gpu": 1}
    assert row["environment_name"] == "prod"

    await kubiya_beat(ingest, worker, status="idle", tasks_processed=5)
    await drain_all(redis, pool, settings)
    row = await persisted(pool, worker.id)
    assert (row["reported_status"], row["tasks_processed"], row["current_task_id"]) == (
        "idle", 5, None,
    )  # fmt: skip


async def test_stale_redis_state_never_regresses_postgres(ingest, redis, pool, settings):
    base = now_ms() - HOUR
    worker = await add_worker(pool, redis, settings)
    await den_beat(ingest, worker, base, isActiveRecently=True, openSessionCount=1)
    # Postgres already holds a newer beat (say, written before Redis lost its data).
    await pool.execute(
        "UPDATE workers SET last_heartbeat_at = $2, last_active_at = $2,"
        " open_session_count = 5, is_active_recently = false WHERE id = $1",
        worker.id, from_ms(base + 5000),
    )  # fmt: skip

    await drain_all(redis, pool, settings)

    row = await persisted(pool, worker.id)
    assert row["last_heartbeat_at"] == base + 5000
    assert row["last_active_at"] == base + 5000
    assert (row["open_session_count"], row["is_active_recently"]) == (5, False)


async def test_persisting_the_same_rows_again_changes_nothing(ingest, redis, pool, settings):
    base = now_ms() - HOUR
    workers = [await add_worker(pool, redis, settings) for _ in range(3)]
    for n, worker in enumerate(workers):
        await den_beat(ingest, worker, base + n, isActiveRecently=True, openSessionCount=n)
    claims = [await claim_dirty(redis, s, 100, 60) for s in range(settings.shards)]
    live = LiveColumns.join(c.live for c in claims)

    await persist_batch(pool, live)
    first = [await persisted(pool, w.id) for w in workers]
    await persist_batch(pool, live)  # an at-least-once retry
    await ack_claims(redis, claims)
    again = [await persisted(pool, w.id) for w in workers]

    strip = ("heartbeat_persisted_at", "updated_at")
    assert [{k: v for k, v in r.items() if k not in strip} for r in again] == [
        {k: v for k, v in r.items() if k not in strip} for r in first
    ]
    assert [r["open_session_count"] for r in again] == [0, 1, 2]


async def test_deleted_workers_are_skipped(ingest, redis, pool, settings):
    gone_from_redis = await add_worker(pool, redis, settings)
    deleted_in_postgres = await add_worker(pool, redis, settings)
    for worker in (gone_from_redis, deleted_in_postgres):
        await den_beat(ingest, worker, now_ms())
    await registry.unregister_worker(redis, settings.shards, gone_from_redis.id)
    await redis.zadd(keys.dirty_key(keys.shard_of(gone_from_redis.id, settings.shards)),
                     {gone_from_redis.id: 1})  # fmt: skip
    await pool.execute("UPDATE workers SET deleted_at = now() WHERE id = $1",
                       deleted_in_postgres.id)  # fmt: skip

    assert await drain_all(redis, pool, settings) == 0

    for worker in (gone_from_redis, deleted_in_postgres):
        assert (await persisted(pool, worker.id))["last_heartbeat_at"] is None
    # Acking a deleted worker must not bring its hash back.
    assert not await redis.exists(keys.worker_key(gone_from_redis.id, settings.shards))
    assert await dirty_and_inflight(redis, settings) == 0


async def test_drain_shard_persists_only_its_shard(ingest, redis, pool, settings):
    workers = [await add_worker(pool, redis, settings) for _ in range(12)]
    for worker in workers:
        await den_beat(ingest, worker, now_ms())
    shard = keys.shard_of(workers[0].id, settings.shards)
    mine = [w for w in workers if keys.shard_of(w.id, settings.shards) == shard]

    assert await drain_shard(redis, pool, settings, shard) == len(mine)
    for worker in workers:
        row = await persisted(pool, worker.id)
        assert (row["last_heartbeat_at"] is not None) == (worker in mine)


async def test_persist_interval_keeps_row_writes_to_one_per_interval(ingest, redis, pool, settings):
    worker = await add_worker(pool, redis, settings)
    start = now_ms() - HOUR
    interval = int(settings.persist_interval * 1000)
    written = 0
    # A beat every second for most of an interval, nothing meaningful changing.
    for second in range(0, interval // 1000 - 1, 3):
        await den_beat(ingest, worker, start + second * 1000, openSessionCount=1)
        written += await drain_all(redis, pool, settings)
    assert written == 1

    # A meaningful change (activity) is persisted at once ...
    await den_beat(ingest, worker, start + interval - 500, openSessionCount=1,
                   isActiveRecently=True)  # fmt: skip
    assert await drain_all(redis, pool, settings) == 1
    # ... and a full interval after the persisted beat, the heartbeat alone is too.
    await den_beat(ingest, worker, start + interval - 400, openSessionCount=1,
                   isActiveRecently=True)  # fmt: skip
    assert await drain_all(redis, pool, settings) == 0
    await den_beat(ingest, worker, start + 2 * interval, openSessionCount=1, isActiveRecently=True)
    assert await drain_all(redis, pool, settings) == 1
    assert (await persisted(pool, worker.id))["last_heartbeat_at"] == start + 2 * interval


async def test_two_flushers_at_once_lose_and_corrupt_nothing(
    ingest, redis, pool, settings, redis_url, database_url
):
    flusher_settings = make_settings(redis_url, database_url, flush_chunk=7, persist_interval=0.001)
    workers = [await add_worker(pool, redis, settings) for _ in range(60)]
    base = now_ms() - HOUR
    sent: dict[str, list[int]] = {w.id: [] for w in workers}
    rng = random.Random(7)

    async def beats() -> None:
        for _ in range(5):
            for worker in workers:
                at = base + rng.randrange(100_000)
                sent[worker.id].append(at)
                await den_beat(ingest, worker, at, isActiveRecently=True, openSessionCount=at)
            await asyncio.sleep(0)

    other_redis = connect_redis(flusher_settings)
    other_pool = await create_pool(database_url)
    try:

        async def flusher(r, p) -> None:
            while not done.is_set():
                await drain_all(r, p, flusher_settings)
                await asyncio.sleep(0)

        done = asyncio.Event()
        runs = [
            asyncio.create_task(flusher(redis, pool)),
            asyncio.create_task(flusher(other_redis, other_pool)),
        ]
        await beats()
        done.set()
        await asyncio.gather(*runs)
        await asyncio.gather(
            drain_all(redis, pool, flusher_settings),
            drain_all(other_redis, other_pool, flusher_settings),
        )
    finally:
        await other_redis.aclose()
        await other_pool.close()

    for worker in workers:
        row = await persisted(pool, worker.id)
        newest = max(sent[worker.id])
        assert row["last_heartbeat_at"] == newest
        assert row["last_active_at"] == newest
        assert row["open_session_count"] == newest  # the newest beat's own value
    assert await dirty_and_inflight(redis, settings) == 0


async def test_a_slow_flusher_never_overwrites_a_newer_write_of_another(
    ingest, redis, pool, settings
):
    workers = [await add_worker(pool, redis, settings) for _ in range(5)]
    base = now_ms() - HOUR
    for worker in workers:
        await den_beat(ingest, worker, base, isActiveRecently=True, openSessionCount=1)
    claimed, resume = asyncio.Event(), asyncio.Event()

    async def stall(claims) -> None:
        claimed.set()
        await resume.wait()

    # Flusher A claims the old state, then stalls; meanwhile newer beats arrive and flusher B
    # claims and writes them. When A resumes, its older snapshot must not win.
    slow = asyncio.create_task(drain_all(redis, pool, settings, after_claim=stall))
    await claimed.wait()
    for worker in workers:
        await den_beat(ingest, worker, base + 5000, isActiveRecently=False, openSessionCount=2)
    assert await drain_all(redis, pool, settings) == len(workers)
    resume.set()
    await slow

    for worker in workers:
        row = await persisted(pool, worker.id)
        assert row["last_heartbeat_at"] == base + 5000
        assert row["last_active_at"] == base
        assert (row["open_session_count"], row["is_active_recently"]) == (2, False)
    assert await dirty_and_inflight(redis, settings) == 0


async def test_a_row_postgres_refuses_is_skipped_without_stalling_the_others(
    ingest, redis, pool, settings, caplog
):
    base = now_ms() - HOUR
    good = [await add_worker(pool, redis, settings) for _ in range(5)]
    bad = await add_worker(pool, redis, settings)
    for worker in [*good, bad]:
        await den_beat(ingest, worker, base)
    # Written past ingest's own checks, as a damaged or foreign writer might leave it.
    await redis.hset(keys.worker_key(bad.id, settings.shards), mapping={"ks": "x\x00y"})

    assert await drain_all(redis, pool, settings) == len(good)

    for worker in good:
        assert (await persisted(pool, worker.id))["last_heartbeat_at"] == base
    assert (await persisted(pool, bad.id))["last_heartbeat_at"] is None
    assert await dirty_and_inflight(redis, settings) == 0
    assert bad.id in caplog.text


async def test_den_and_kubiya_workers_written_together_keep_their_own_fields(
    ingest, redis, pool, settings
):
    den = await add_worker(pool, redis, settings)
    kubiya = await add_worker(pool, redis, settings)
    await den_beat(ingest, den, now_ms(), openSessionCount=3, isActiveRecently=True)
    await kubiya_beat(ingest, kubiya, status="idle", tasks_processed=3)

    assert await drain_all(redis, pool, settings) == 2

    den_row, kubiya_row = await persisted(pool, den.id), await persisted(pool, kubiya.id)
    assert (den_row["open_session_count"], den_row["reported_status"]) == (3, None)
    assert (kubiya_row["reported_status"], kubiya_row["tasks_processed"]) == ("idle", 3)
    assert kubiya_row["environment_name"] == "prod"


async def test_a_den_beat_leaves_what_a_kubiya_beat_stored(ingest, redis, pool, settings):
    worker = await add_worker(pool, redis, settings)
    await pool.execute(
        "UPDATE workers SET reported_status = 'busy', tasks_processed = 9,"
        " worker_metadata = '{\"a\": 1}' WHERE id = $1",
        worker.id,
    )
    await den_beat(ingest, worker, now_ms(), openSessionCount=1)

    assert await drain_all(redis, pool, settings) == 1

    row = await persisted(pool, worker.id)
    assert (row["reported_status"], row["tasks_processed"], row["open_session_count"]) == (
        "busy", 9, 1,
    )  # fmt: skip
    assert json.loads(row["worker_metadata"]) == {"a": 1}


async def test_text_with_delimiters_quotes_and_backslashes_is_persisted_as_sent(
    ingest, redis, pool, settings
):
    worker = await add_worker(pool, redis, settings)
    metadata = {"say": 'hi, "you" {x}', "path": "C:\\tmp"}
    await kubiya_beat(ingest, worker, status='busy, "really"', current_task_id="a\\b{c}",
                      environment_name="NULL", worker_metadata=metadata)  # fmt: skip

    await drain_all(redis, pool, settings)

    row = await persisted(pool, worker.id)
    assert (row["reported_status"], row["current_task_id"], row["environment_name"]) == (
        'busy, "really"', "a\\b{c}", "NULL",
    )  # fmt: skip
    assert json.loads(row["worker_metadata"]) == metadata


async def test_a_damaged_number_or_non_utf8_text_skips_only_its_worker(
    ingest, redis, pool, settings, caplog
):
    good = [await add_worker(pool, redis, settings) for _ in range(6)]
    comma, not_utf8 = (
        await add_worker(pool, redis, settings),
        await add_worker(pool, redis, settings),
    )
    for n, worker in enumerate(good):
        await den_beat(ingest, worker, now_ms(), openSessionCount=n)
    await den_beat(ingest, comma, now_ms())
    await kubiya_beat(ingest, not_utf8, status="busy")
    # Written past ingest's checks: "1,2" must not become two values and shift the other rows.
    await redis.hset(keys.worker_key(comma.id, settings.shards), mapping={"osc": "1,2"})
    await redis.hset(keys.worker_key(not_utf8.id, settings.shards), mapping={"kc": b"\xff"})

    assert await drain_all(redis, pool, settings) == len(good)

    for n, worker in enumerate(good):
        assert (await persisted(pool, worker.id))["open_session_count"] == n
    for worker in (comma, not_utf8):
        assert (await persisted(pool, worker.id))["last_heartbeat_at"] is None
        assert worker.id in caplog.text
    assert await dirty_and_inflight(redis, settings) == 0
