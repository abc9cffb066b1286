"""The demo seed of `hb dev`: created once, reused while it exists, repaired piece by piece."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from hb.demo_seed import DemoSeed, ensure_demo
from shared.contract import keys, registry
from shared.contract.tokens import hash_secret, verify_worker_token
from shared.settings import Settings
from tests.conftest import make_settings


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    return make_settings(redis_url, database_url)


async def test_a_second_run_reuses_every_credential(pool, redis: Redis, settings) -> None:
    first = await ensure_demo(pool, redis, settings, None)
    again = await ensure_demo(pool, redis, settings, DemoSeed(**vars(first)))
    assert again == first
    assert await pool.fetchval("SELECT count(*) FROM workers") == 1
    assert await pool.fetchval("SELECT count(*) FROM api_keys") == 1


async def test_the_seed_is_usable_by_ingest_and_the_api(pool, redis: Redis, settings) -> None:
    seed = await ensure_demo(pool, redis, settings, None)
    claim = verify_worker_token(settings.token_keys, seed.heartbeatToken)
    assert claim is not None and claim.worker_id == seed.workerId
    assert await registry.api_key_org(redis, hash_secret(seed.apiKey)) == seed.orgId
    entry = await redis.hgetall(keys.worker_key(seed.workerId, settings.shards))
    assert entry[keys.F_ORG.encode()] == seed.orgId.encode()


async def test_a_revoked_key_and_deleted_worker_are_replaced(pool, redis: Redis, settings) -> None:
    first = await ensure_demo(pool, redis, settings, None)
    await pool.execute("UPDATE api_keys SET revoked_at = now()")
    await pool.execute("UPDATE workers SET deleted_at = now()")
    again = await ensure_demo(pool, redis, settings, DemoSeed(**vars(first)))
    assert (again.orgId, again.userId, again.sessionToken) == (
        first.orgId, first.userId, first.sessionToken,
    )  # fmt: skip
    assert again.apiKey != first.apiKey and again.workerId != first.workerId


async def test_registry_entries_lost_with_redis_are_written_again(
    pool, redis: Redis, settings
) -> None:
    first = await ensure_demo(pool, redis, settings, None)
    await redis.flushdb()
    await ensure_demo(pool, redis, settings, DemoSeed(**vars(first)))
    assert await registry.api_key_org(redis, hash_secret(first.apiKey)) == first.orgId
    assert await redis.exists(keys.worker_key(first.workerId, settings.shards))
