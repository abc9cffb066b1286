from __future__ import annotations

from flusher.drain import drain_all
from flusher.reconcile import reconcile_registry
from shared.contract import keys
from shared.contract.times import now_ms, parse_ms
from tests.api.fleet_support import add_worker, beat, fleet


async def summary(api, tenant) -> dict:
    r = await api.get("/v1/workers/summary", headers=tenant.as_user)
    assert r.status_code == 200, r.text
    return r.json()


async def test_summary_counts_by_liveness_and_status(
    api, ingest, pool, redis, settings, tenant, other_tenant
):
    ids = await fleet(ingest, pool, redis, settings, tenant)
    await pool.execute("UPDATE workers SET status = 'healthy' WHERE id = $1", ids["online"])
    await pool.execute("UPDATE workers SET status = 'failed' WHERE id = $1", ids["offline"])
    before = now_ms()

    body = await summary(api, tenant)

    assert body["total"] == 4
    assert body["liveness"] == {"online": 1, "stale": 1, "offline": 1, "never": 1}
    assert body["status"] == {"provisioning": 2, "healthy": 1, "failed": 1, "stopped": 0}
    assert parse_ms(body["asOf"]) >= before - 1
    other = await summary(api, other_tenant)
    assert other["total"] == 0
    assert other["liveness"] == {"online": 0, "stale": 0, "offline": 0, "never": 0}


async def test_summary_follows_beats_and_deletions(api, ingest, pool, redis, settings, tenant):
    ids = await fleet(ingest, pool, redis, settings, tenant)
    token = await _rotate(api, tenant, ids["never"])
    await beat(ingest, ids["never"], token)
    assert (await summary(api, tenant))["liveness"] == {
        "online": 2, "stale": 1, "offline": 1, "never": 0,
    }  # fmt: skip

    for worker_id in (ids["offline"], ids["online"]):
        r = await api.delete(f"/v1/workers/{worker_id}", headers=tenant.as_key)
        assert r.status_code == 204

    body = await summary(api, tenant)
    assert body["total"] == 2
    assert body["liveness"] == {"online": 1, "stale": 1, "offline": 0, "never": 0}
    assert body["status"]["provisioning"] == 2


async def test_summary_needs_credentials(api):
    assert (await api.get("/v1/workers/summary")).status_code == 401
    r = await api.get("/v1/workers/summary", headers={"Authorization": "Bearer hbs_nope"})
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized"}


async def test_reconcile_builds_the_index_for_a_deployment_that_had_none(
    api, ingest, pool, redis, settings, tenant
):
    """The migration path: beats recorded (and persisted) before the index existed."""
    await fleet(ingest, pool, redis, settings, tenant)
    await add_worker(pool, redis, settings, tenant, "persisted-only")
    await drain_all(redis, pool, settings)
    for shard in range(settings.shards):
        await redis.delete(keys.seen_key(shard, tenant.org_id))
    # One worker's hash lost its heartbeat too: Postgres still has it.
    await pool.execute("UPDATE workers SET last_heartbeat_at = now() WHERE name = 'persisted-only'")
    assert (await summary(api, tenant))["liveness"]["never"] == 5

    await reconcile_registry(redis, pool, settings)

    assert (await summary(api, tenant))["liveness"] == {
        "online": 2, "stale": 1, "offline": 1, "never": 1,
    }  # fmt: skip
    r = await api.get("/v1/workers?liveness=online", headers=tenant.as_key)
    assert sorted(w["name"] for w in r.json()["workers"]) == ["online", "persisted-only"]


async def _rotate(api, tenant, worker_id: str) -> str:
    r = await api.post(f"/v1/workers/{worker_id}/heartbeat-token", headers=tenant.as_user)
    assert r.status_code == 200, r.text
    return r.json()["heartbeatToken"]


async def test_a_disconnected_worker_counts_offline_until_its_next_beat(
    api, ingest, pool, redis, settings, tenant
):
    ids = await fleet(ingest, pool, redis, settings, tenant)
    worker_id, token = await add_worker(pool, redis, settings, tenant, "leaving")
    await beat(ingest, worker_id, token)
    r = await ingest.post(
        f"/api/v1/workers/{worker_id}/disconnect",
        json={"reason": "shutdown"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 204, r.text
    await beat(ingest, worker_id, token, age_s=30)  # older than its last beat: still gone

    async def seen() -> tuple[dict, list[str], str]:
        counts = (await summary(api, tenant))["liveness"]
        r = await api.get("/v1/workers?liveness=offline", headers=tenant.as_key)
        detail = await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_key)
        names = sorted(w["name"] for w in r.json()["workers"])
        return counts, names, detail.json()["worker"]["liveness"]

    assert await seen() == (
        {"online": 1, "stale": 1, "offline": 2, "never": 1}, ["leaving", "offline"], "offline",
    )  # fmt: skip
    # A reconcile keeps it there, from the hash and, once Redis lost the index and the hash,
    # from Postgres.
    await drain_all(redis, pool, settings)
    await reconcile_registry(redis, pool, settings)
    assert (await seen())[0]["offline"] == 2
    for shard in range(settings.shards):
        await redis.delete(keys.seen_key(shard, tenant.org_id))
    await redis.delete(keys.worker_key(worker_id, settings.shards))
    await reconcile_registry(redis, pool, settings)
    assert await seen() == (
        {"online": 1, "stale": 1, "offline": 2, "never": 1}, ["leaving", "offline"], "offline",
    )  # fmt: skip
    detail = await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_key)
    assert detail.json()["worker"]["disconnectReason"] == "shutdown"

    await beat(ingest, worker_id, token)
    assert (await summary(api, tenant))["liveness"] == {
        "online": 2, "stale": 1, "offline": 1, "never": 1,
    }  # fmt: skip
    assert ids  # the fleet's other workers kept their places throughout
