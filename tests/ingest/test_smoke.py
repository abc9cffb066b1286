from tests.conftest import register


async def test_den_beat_is_acknowledged_with_stored_values(ingest, redis, settings):
    worker = await register(redis, settings)
    r = await ingest.post(
        f"/v1/workers/{worker.id}/activity-heartbeat",
        json={"isActiveRecently": True, "openSessionCount": 3},
        headers={"Authorization": f"Bearer {worker.token}"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["workerId"] == worker.id
    assert body["openSessionCount"] == 3
    assert body["lastActiveAt"] == body["lastHeartbeatAt"]
