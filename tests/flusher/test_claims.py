from flusher.claims import ack_claims, claim_shards, release_claims
from shared.contract import keys
from shared.contract.times import now_ms
from tests.conftest import register
from tests.flusher.conftest import add_worker, den_beat, kubiya_beat


async def beaten_workers_of_one_shard(ingest, redis, settings, count: int) -> tuple[int, list]:
    """`count` registered workers that share a shard, each with one beat (so each is dirty)."""
    shard, workers = None, []
    while len(workers) < count:
        worker = await register(redis, settings)
        if shard in (None, keys.shard_of(worker.id, settings.shards)):
            shard = keys.shard_of(worker.id, settings.shards)
            await den_beat(ingest, worker, now_ms(), isActiveRecently=True)
            workers.append(worker)
    assert shard is not None
    return shard, workers


async def in_flight(redis, shard: int) -> set[str]:
    claims = await redis.hvals(keys.claims_key(shard))
    return {worker_id for ids in claims for worker_id in ids.decode().split()}


async def dirty(redis, shard: int) -> set[str]:
    return {m.decode() for m in await redis.zrange(keys.dirty_key(shard), 0, -1)}


async def test_claims_of_one_shard_in_the_same_millisecond_are_acked_separately(
    ingest, redis, settings
):
    shard, _ = await beaten_workers_of_one_shard(ingest, redis, settings, 4)
    at = now_ms()
    [first] = await claim_shards(redis, [shard], 2, 60, now=at)
    [second] = await claim_shards(redis, [shard], 2, 60, now=at)
    assert first.name != second.name
    second_ids = {i.decode() for i in second.live.ids}

    await ack_claims(redis, [first])

    assert await in_flight(redis, shard) == second_ids
    await ack_claims(redis, [second])
    assert await in_flight(redis, shard) == set()


async def test_a_released_claim_returns_only_its_own_workers_to_dirty(ingest, redis, settings):
    shard, _ = await beaten_workers_of_one_shard(ingest, redis, settings, 4)
    at = now_ms()
    [first] = await claim_shards(redis, [shard], 2, 60, now=at)
    [second] = await claim_shards(redis, [shard], 2, 60, now=at)

    await release_claims(redis, [first])

    assert await dirty(redis, shard) == {i.decode() for i in first.live.ids}
    assert await in_flight(redis, shard) == {i.decode() for i in second.live.ids}


async def test_an_ack_after_the_lease_expired_and_was_reclaimed_leaves_the_new_claim(
    ingest, redis, settings
):
    shard, workers = await beaten_workers_of_one_shard(ingest, redis, settings, 3)
    at = now_ms()
    [stale] = await claim_shards(redis, [shard], 10, 1, now=at)
    # Another flusher, after the lease ran out, takes the same workers again.
    [fresh] = await claim_shards(redis, [shard], 10, 60, now=at + 5000)
    assert sorted(fresh.live.ids) == sorted(stale.live.ids)

    await ack_claims(redis, [stale])
    await release_claims(redis, [stale])

    assert await in_flight(redis, shard) == {w.id for w in workers}
    assert await dirty(redis, shard) == set()


async def test_a_claim_carries_kubiya_fields_only_in_the_rows_of_kubiya_workers(
    ingest, redis, pool, settings
):
    den = [await add_worker(pool, redis, settings) for _ in range(3)]
    kubiya = await add_worker(pool, redis, settings)
    for worker in den:
        await den_beat(ingest, worker, now_ms(), openSessionCount=2)
    await kubiya_beat(ingest, kubiya, status="busy", tasks_processed=3, current_task_id="t-9")

    claims = await claim_shards(redis, range(settings.shards), 10, 60)

    for claim in claims:
        columns = dict(zip(claim.live.ids, zip(*claim.live.columns, strict=True), strict=True))
        for worker in den:
            if worker.id.encode() in columns:
                row = columns[worker.id.encode()]
                assert row[4] == b"2" and set(row[6:]) <= {b""}
        if kubiya.id.encode() in columns:
            assert columns[kubiya.id.encode()][6:9] == (b"busy", b"3", b"t-9")
    assert sum(len(c) for c in claims) == 4


async def scores(redis, shard: int) -> dict[str, float]:
    return {m.decode(): s for m, s in await redis.zrange(keys.dirty_key(shard), 0, -1,
                                                           withscores=True)}  # fmt: skip


async def test_released_workers_go_back_to_dirty_with_the_age_they_had(ingest, redis, settings):
    shard, workers = await beaten_workers_of_one_shard(ingest, redis, settings, 3)
    long_ago = now_ms() - 3_600_000
    await redis.zadd(keys.dirty_key(shard), {w.id: long_ago for w in workers})
    [claim] = await claim_shards(redis, [shard], 10, 60)

    await release_claims(redis, [claim])

    assert await scores(redis, shard) == {w.id: long_ago for w in workers}


async def test_workers_of_an_expired_lease_go_back_with_the_age_they_had(ingest, redis, settings):
    shard, workers = await beaten_workers_of_one_shard(ingest, redis, settings, 3)
    long_ago = now_ms() - 3_600_000
    await redis.zadd(keys.dirty_key(shard), {w.id: long_ago for w in workers})
    at = now_ms()
    await claim_shards(redis, [shard], 10, 1, now=at)  # leased for one second, never acked

    [again] = await claim_shards(redis, [shard], 10, 60, now=at + 2_000)

    assert keys.parse_claim_name(again.name).dirty_since_ms == long_ago
    assert len(again) == 3


async def test_a_claim_named_by_an_earlier_version_still_expires_into_dirty(
    ingest, redis, settings
):
    shard, workers = await beaten_workers_of_one_shard(ingest, redis, settings, 2)
    await redis.delete(keys.dirty_key(shard))
    at = now_ms()
    await redis.hset(keys.claims_key(shard), f"{at - 1}:2", " ".join(w.id for w in workers))
    assert keys.inflight_workers(await redis.hkeys(keys.claims_key(shard))) == 2

    [claim] = await claim_shards(redis, [shard], 10, 60, now=at)

    assert {i.decode() for i in claim.live.ids} == {w.id for w in workers}
    assert keys.parse_claim_name(claim.name).dirty_since_ms == at  # its age was not recorded
