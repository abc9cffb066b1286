"""A worker's life through the three services: API creates it, ingest takes its beats, the API
reads them back (before and after the flusher persisted them), then rotates and deletes it."""

from __future__ import annotations

from flusher.drain import drain_all
from tests.api.contract import assert_valid


async def beat(ingest, worker_id, token, **body):
    return await ingest.post(
        f"/v1/workers/{worker_id}/activity-heartbeat",
        json={"isActiveRecently": True} | body,
        headers={"x-den-worker-heartbeat-token": token},
    )


async def read(api, tenant, worker_id):
    r = await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_user)
    assert r.status_code == 200, r.text
    assert_valid("WorkerResponse", r.json())
    return r.json()["worker"]


async def test_create_beat_read_rotate_delete(api, ingest, pool, tenant, other_tenant):
    created = await api.post("/v1/workers", json={"name": "runner-1"}, headers=tenant.as_user)
    assert created.status_code == 201
    worker_id, token = created.json()["worker"]["id"], created.json()["heartbeatToken"]

    acked = await beat(ingest, worker_id, token, openSessionCount=2)
    assert acked.status_code == 200, acked.text

    worker = await read(api, tenant, worker_id)
    assert worker["lastHeartbeatAt"] == acked.json()["lastHeartbeatAt"]
    assert worker["lastActiveAt"] == acked.json()["lastActiveAt"]
    assert (worker["openSessionCount"], worker["liveness"]) == (2, "online")
    listed = (await api.get("/v1/workers", headers=tenant.as_key)).json()
    assert [w["id"] for w in listed["workers"]] == [worker_id]
    assert_valid("WorkerListResponse", listed)

    others = await api.get("/v1/workers", headers=other_tenant.as_key)
    assert others.json()["workers"] == []
    hidden = await api.get(f"/v1/workers/{worker_id}", headers=other_tenant.as_key)
    assert hidden.status_code == 404

    rotated = await api.post(f"/v1/workers/{worker_id}/heartbeat-token", headers=tenant.as_user)
    assert (await beat(ingest, worker_id, token)).status_code == 401
    assert (await beat(ingest, worker_id, rotated.json()["heartbeatToken"])).status_code == 200

    assert (await api.delete(f"/v1/workers/{worker_id}", headers=tenant.as_user)).status_code == 204
    assert (await beat(ingest, worker_id, rotated.json()["heartbeatToken"])).status_code == 404
    assert (await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_user)).status_code == 404


async def test_reads_agree_before_and_after_a_flush(api, ingest, pool, redis, settings, tenant):
    created = await api.post("/v1/workers", json={"name": "runner-2"}, headers=tenant.as_user)
    worker_id, token = created.json()["worker"]["id"], created.json()["heartbeatToken"]
    acked = await beat(ingest, worker_id, token, openSessionCount=5)
    assert acked.status_code == 200
    before = await read(api, tenant, worker_id)
    assert await pool.fetchval("SELECT last_heartbeat_at FROM workers") is None

    await drain_all(redis, pool, settings)

    persisted = await pool.fetchrow(
        "SELECT last_heartbeat_at, open_session_count FROM workers WHERE id = $1", worker_id
    )
    assert persisted["last_heartbeat_at"] is not None
    assert persisted["open_session_count"] == 5
    after = await read(api, tenant, worker_id)
    assert after == before | {"updatedAt": after["updatedAt"]}
    assert after["lastHeartbeatAt"] == acked.json()["lastHeartbeatAt"]
