"""`clockSkewMs` is what the newest beat observed: a beat without a client time observed none."""

from __future__ import annotations

from flusher.drain import drain_all
from shared.contract import keys

FAR_FUTURE = "9999-12-31T23:59:59Z"  # about 8,000 years of skew


async def beat(ingest, worker_id, token, **body):
    r = await ingest.post(
        f"/v1/workers/{worker_id}/activity-heartbeat",
        json={"isActiveRecently": False} | body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text


async def skew_shown(api, tenant, worker_id):
    r = await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_key)
    assert r.status_code == 200, r.text
    listed = await api.get("/v1/workers", headers=tenant.as_key)
    (item,) = [w for w in listed.json()["workers"] if w["id"] == worker_id]
    assert item["clockSkewMs"] == r.json()["worker"]["clockSkewMs"]
    return r.json()["worker"]["clockSkewMs"]


async def new_worker(api, tenant):
    created = await api.post("/v1/workers", json={"name": "w"}, headers=tenant.as_user)
    assert created.status_code == 201
    return created.json()["worker"]["id"], created.json()["heartbeatToken"]


async def test_a_beat_without_sent_at_clears_the_skew_in_redis(
    api, ingest, redis, settings, tenant
):
    worker_id, token = await new_worker(api, tenant)
    await beat(ingest, worker_id, token, sentAt=FAR_FUTURE)
    assert await skew_shown(api, tenant, worker_id) > 250_000_000_000_000

    await beat(ingest, worker_id, token)

    assert await skew_shown(api, tenant, worker_id) is None
    stored = await redis.hgetall(keys.worker_key(worker_id, settings.shards))
    assert keys.F_SKEW.encode() not in stored


async def test_a_cleared_skew_reaches_postgres_with_the_next_flush(
    api, ingest, pool, redis, settings, tenant
):
    worker_id, token = await new_worker(api, tenant)
    await beat(ingest, worker_id, token, sentAt=FAR_FUTURE)
    await drain_all(redis, pool, settings)
    skew = "SELECT clock_skew_ms FROM workers WHERE id = $1"
    assert await pool.fetchval(skew, worker_id) > 250_000_000_000_000

    await beat(ingest, worker_id, token)  # well within the persist interval of the last flush
    await drain_all(redis, pool, settings)

    assert await pool.fetchval(skew, worker_id) is None
    assert await skew_shown(api, tenant, worker_id) is None


async def test_a_beat_with_a_client_time_replaces_the_skew(api, ingest, redis, settings, tenant):
    worker_id, token = await new_worker(api, tenant)
    await beat(ingest, worker_id, token, sentAt=FAR_FUTURE)
    # Clamped to the receive time, so it is the newest beat: its skew is the one shown.
    await beat(ingest, worker_id, token, sentAt="3000-01-01T00:00:00Z")
    assert 0 < await skew_shown(api, tenant, worker_id) < 32_600_000_000_000
