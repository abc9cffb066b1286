from flusher.drain import drain_all
from flusher.reconcile import reconcile_registry
from flusher.worker import flush_dirty, startup
from shared.contract import keys, registry, typeid
from shared.contract.registry import registry_lost
from shared.contract.times import now_ms
from shared.contract.tokens import hash_secret, issue_worker_token, new_api_key
from tests.flusher.conftest import add_worker, den_beat, persisted

HOUR = 3_600_000


async def add_api_key(pool, org_id: str, revoked: bool = False) -> str:
    secret = new_api_key()
    await pool.execute(
        "INSERT INTO api_keys (id, org_id, name, key_hash, revoked_at)"
        " VALUES ($1, $2, 'k', $3, CASE WHEN $4 THEN now() END)",
        typeid.new_id(typeid.API_KEY), org_id, hash_secret(secret), revoked,
    )  # fmt: skip
    return secret


async def kubiya_status(ingest, worker_id: str, credential: str) -> int:
    r = await ingest.post(
        "/api/v1/workers/heartbeat",
        json={"worker_id": worker_id, "environment_name": "prod"},
        headers={"Authorization": f"Bearer {credential}"},
    )
    return r.status_code


async def den_status(ingest, worker) -> int:
    r = await ingest.post(
        f"/v1/workers/{worker.id}/activity-heartbeat",
        json={"isActiveRecently": False},
        headers={"Authorization": f"Bearer {worker.token}"},
    )
    return r.status_code


async def test_flushed_redis_is_repaired_from_postgres_and_ingest_accepts_beats_again(
    ingest, redis, pool, settings
):
    worker = await add_worker(pool, redis, settings)
    deleted = await add_worker(pool, redis, settings, org_id=worker.org_id)
    rotated = await add_worker(pool, redis, settings, org_id=worker.org_id)
    await pool.execute("UPDATE workers SET deleted_at = now() WHERE id = $1", deleted.id)
    await pool.execute("UPDATE workers SET token_version = 2 WHERE id = $1", rotated.id)
    key = await add_api_key(pool, worker.org_id)
    revoked_key = await add_api_key(pool, worker.org_id, revoked=True)
    sent = now_ms() - HOUR
    await den_beat(ingest, worker, sent)
    ctx = {"settings": settings}
    await startup(ctx)
    try:
        assert await flush_dirty(ctx) == 1
        assert int(await redis.get(keys.ROWS_PERSISTED)) == 1  # counted for /metrics

        await redis.flushall()
        assert await den_status(ingest, worker) == 503  # not "deleted": the registry is gone

        await flush_dirty(ctx)  # notices the lost registry and rebuilds it first

        assert not await registry_lost(redis, settings.shards)
        assert await den_status(ingest, worker) == 200
        assert await kubiya_status(ingest, worker.id, key) == 204
        assert await kubiya_status(ingest, worker.id, revoked_key) == 401
        assert await den_status(ingest, deleted) == 404
        assert await den_status(ingest, rotated) == 401  # its token is version 1
        new_token = issue_worker_token(settings.token_keys, "k1", rotated.id, 2)
        assert await kubiya_status(ingest, rotated.id, new_token) == 204
    finally:
        await ctx["pool"].close()
        await ctx["hot"].aclose()


async def test_reconcile_restores_the_persisted_heartbeat_into_a_lost_hash(
    ingest, redis, pool, settings
):
    worker = await add_worker(pool, redis, settings)
    sent = now_ms() - HOUR
    await den_beat(ingest, worker, sent, isActiveRecently=True)
    ctx = {"settings": settings}
    await startup(ctx)
    try:
        await flush_dirty(ctx)
        await redis.flushall()
        await reconcile_registry(redis, pool, settings)
    finally:
        await ctx["pool"].close()
        await ctx["hot"].aclose()

    fields = await redis.hgetall(keys.worker_key(worker.id, settings.shards))
    assert fields[keys.F_HEARTBEAT.encode()] == str(sent).encode()
    assert fields[keys.F_PERSISTED.encode()] == str(sent).encode()
    assert fields[keys.F_ACTIVE.encode()] == str(sent).encode()
    # An older replayed beat can't move the acknowledged heartbeat backwards.
    body = await den_beat(ingest, worker, sent - 5000)
    assert body["lastHeartbeatAt"] == (await den_beat(ingest, worker, sent))["lastHeartbeatAt"]
    assert (await persisted(pool, worker.id))["last_heartbeat_at"] == sent


async def test_reconcile_never_lowers_a_token_version_nor_revives_a_deletion(redis, pool, settings):
    worker = await add_worker(pool, redis, settings)
    deleted = await add_worker(pool, redis, settings, org_id=worker.org_id)
    # The API rotated the token in Postgres and Redis after this reconcile read Postgres: Redis
    # is ahead, and stays so.
    await registry.register_worker(redis, settings.shards, worker.id, worker.org_id, 3)
    await pool.execute("UPDATE workers SET deleted_at = now() WHERE id = $1", deleted.id)
    stale_key = hash_secret(new_api_key())
    await registry.register_api_key(redis, stale_key, worker.org_id)  # in Redis, not Postgres

    result = await reconcile_registry(redis, pool, settings)

    key = keys.worker_key(worker.id, settings.shards)
    assert await redis.hget(key, keys.F_TOKEN_VERSION) == b"3"
    assert not await redis.exists(keys.worker_key(deleted.id, settings.shards))
    assert await registry.api_key_org(redis, stale_key) is None
    assert (result.workers, result.deleted_workers, result.removed_api_keys) == (1, 1, 1)


async def test_claims_left_by_a_flusher_of_the_previous_layout_go_back_to_dirty(
    ingest, redis, pool, settings
):
    worker = await add_worker(pool, redis, settings)
    sent = now_ms() - HOUR
    await den_beat(ingest, worker, sent)
    # What an older flusher did on claim: the id moves from dirty to an in-flight sorted set.
    shard = keys.shard_of(worker.id, settings.shards)
    legacy = keys.legacy_inflight_key(shard)
    await redis.zpopmin(keys.dirty_key(shard))
    await redis.zadd(legacy, {worker.id: now_ms() + 60_000})

    result = await reconcile_registry(redis, pool, settings)

    assert result.legacy_claims_returned == 1
    assert not await redis.exists(legacy)
    assert await drain_all(redis, pool, settings) == 1
    assert (await persisted(pool, worker.id))["last_heartbeat_at"] == sent
