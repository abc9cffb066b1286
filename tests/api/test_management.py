"""Writes that race: Postgres decides, and the registry never outlives a deletion."""

from __future__ import annotations

from api import management
from shared.contract import keys, registry


async def test_a_rotation_racing_a_deletion_does_not_bring_the_worker_back(
    pool, redis, settings, tenant, monkeypatch
):
    worker_id, _, _ = await management.create_worker(
        pool, redis, settings, tenant.org_id, "w", tenant.user_id
    )
    register = registry.register_worker

    async def deleted_first(*args, **kwargs):
        # The whole deletion (Postgres, then its registry removal) lands between the rotation's
        # UPDATE and its registry write: the interleaving that brought the worker back.
        await management.delete_worker(pool, redis, settings, tenant.org_id, worker_id)
        await register(*args, **kwargs)

    monkeypatch.setattr(registry, "register_worker", deleted_first)
    rotated = await management.rotate_worker_token(pool, redis, settings, tenant.org_id, worker_id)

    assert rotated is None
    assert not await redis.exists(keys.worker_key(worker_id, settings.shards))


async def test_a_rotation_registers_the_new_token_version(pool, redis, settings, tenant):
    worker_id, _, _ = await management.create_worker(
        pool, redis, settings, tenant.org_id, "w", tenant.user_id
    )
    rotated = await management.rotate_worker_token(pool, redis, settings, tenant.org_id, worker_id)
    assert rotated is not None and rotated.token_version == 2 and rotated.registry_synced
    entry = await redis.hget(keys.worker_key(worker_id, settings.shards), keys.F_TOKEN_VERSION)
    assert entry == b"2"


async def test_two_rotations_whose_registry_writes_arrive_out_of_order_keep_the_newer(
    pool, redis, settings, tenant, monkeypatch
):
    worker_id, _, _ = await management.create_worker(
        pool, redis, settings, tenant.org_id, "w", tenant.user_id
    )
    register = registry.register_worker
    calls = 0

    async def overtaken(*args, **kwargs):
        # The first rotation's registry write is overtaken by the whole second rotation.
        nonlocal calls
        calls += 1
        if calls == 1:
            rotated = await management.rotate_worker_token(
                pool, redis, settings, tenant.org_id, worker_id
            )
            assert rotated is not None and rotated.token_version == 3
        await register(*args, **kwargs)

    monkeypatch.setattr(registry, "register_worker", overtaken)
    await management.rotate_worker_token(pool, redis, settings, tenant.org_id, worker_id)

    version = await redis.hget(keys.worker_key(worker_id, settings.shards), keys.F_TOKEN_VERSION)
    assert version == b"3"
    assert await pool.fetchval("SELECT token_version FROM workers WHERE id = $1", worker_id) == 3
