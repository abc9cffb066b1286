"""Reads survive Redis being down (durable data, said so in headers); Postgres down is a 503."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from api import management
from api.app import create_app
from api.state import ApiState
from shared.contract.keys import LIVE_FIELDS
from tests.conftest import asgi_client, register


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def api_without_redis(settings):
    dead = replace(settings, redis_url=f"redis://127.0.0.1:{unused_port()}/0", redis_timeout=0.5)
    async for client in asgi_client(create_app(dead)):
        yield client


@pytest.fixture
async def api_without_postgres(settings):
    dead = replace(settings, database_url=f"postgresql://postgres@127.0.0.1:{unused_port()}/x")
    async for client in asgi_client(create_app(dead)):
        yield client


async def test_redis_down_serves_durable_values_and_says_so(
    api_without_redis, pool, redis, settings, tenant
):
    worker_id, _, _ = await management.create_worker(pool, redis, settings, tenant.org_id, "w")
    persisted = datetime(2025, 5, 5, 5, 5, 5, 5000, tzinfo=UTC)
    await pool.execute(
        "UPDATE workers SET last_heartbeat_at = $2, open_session_count = 3,"
        " system_info = '{\"cpu_count\": 4}', disconnected_at = $2, disconnect_reason = 'crash'"
        " WHERE id = $1",
        worker_id, persisted,
    )  # fmt: skip

    for path in ("/v1/workers", f"/v1/workers/{worker_id}"):
        r = await api_without_redis.get(path, headers=tenant.as_user)
        assert r.status_code == 200, r.text
        assert r.headers["X-Heartbeat-Data"] == "durable-only"
        assert r.headers["Warning"].startswith("199 ")
        assert "65s old" in r.headers["Warning"]  # persist interval + flush interval
        body = r.json()
        worker = body["workers"][0] if "workers" in body else body["worker"]
        assert worker["lastHeartbeatAt"] == "2025-05-05T05:05:05.005Z"
        assert worker["openSessionCount"] == 3
        assert worker["systemInfo"] == {"cpu_count": 4}
        assert (worker["disconnectReason"], worker["liveness"]) == ("crash", "offline")
        if "worker" in body:  # the detail's recent logs are kept in Redis only
            assert worker["recentLogs"] == []


async def test_with_redis_up_there_is_no_degraded_header(api, tenant):
    r = await api.get("/v1/workers", headers=tenant.as_user)
    assert "X-Heartbeat-Data" not in r.headers


async def test_writes_with_redis_down_stand_in_postgres_and_say_the_registry_is_pending(
    api_without_redis, pool, tenant
):
    r = await api_without_redis.post("/v1/workers", json={"name": "w"}, headers=tenant.as_user)

    assert r.status_code == 201
    assert r.headers["X-Registry-Sync"] == "pending"
    worker_id = r.json()["worker"]["id"]
    assert await pool.fetchval("SELECT count(*) FROM workers WHERE id = $1", worker_id) == 1
    rotated = await api_without_redis.post(
        f"/v1/workers/{worker_id}/heartbeat-token", headers=tenant.as_user
    )
    assert (rotated.status_code, rotated.headers["X-Registry-Sync"]) == (200, "pending")


async def test_postgres_down_is_503_with_retry_after(api_without_postgres, tenant):
    requests = [
        ("GET", "/v1/workers"),
        ("GET", "/v1/workers/wrk_01jqz3k5m2a8b9c0d1e2f3g4h5"),
        ("POST", "/v1/workers"),
        ("GET", "/v1/api-keys"),
    ]
    for method, path in requests:
        r = await api_without_postgres.request(
            method, path, json={"name": "w"} if method == "POST" else None, headers=tenant.as_key
        )
        assert r.status_code == 503, (path, r.text)
        assert r.json()["error"] == "unavailable"
        assert r.headers["Retry-After"] == "1"
    assert (await api_without_postgres.get("/ready")).status_code == 503
    assert (await api_without_postgres.get("/health")).status_code == 200


async def test_the_api_stays_ready_without_redis_and_says_it_is_degraded(api_without_redis, api):
    """Its reads still answer (from Postgres), so a readiness probe must not take it out."""
    r = await api_without_redis.get("/ready")
    assert r.status_code == 200
    assert r.json()["status"] == "degraded"
    assert "Redis" in r.json()["message"]
    assert (await api.get("/ready")).json() == {"status": "ready"}


@pytest.mark.parametrize("cluster_client", [False, True], ids=["pipe", "pooled"])
async def test_reads_beyond_the_pooled_redis_connections_wait_instead_of_degrading(
    cluster_client, settings, redis
):
    worker = await register(redis, settings)
    state = ApiState()
    await state.start(settings)
    if cluster_client:  # read through the pool, as on a cluster
        state.pipe = None
    try:
        pool = state.redis.connection_pool
        held = [await pool.get_connection() for _ in range(pool.max_connections)]
        # Tasks run in the order created: the read finds the pool empty before any is returned.
        read = asyncio.create_task(state.live_fields([worker.id]))

        async def give_back() -> None:
            for conn in held:
                await pool.release(conn)

        await asyncio.create_task(give_back())
        assert await read == [[None] * len(LIVE_FIELDS)]  # Redis answered: no beat yet
    finally:
        await state.stop()


async def test_a_kept_connection_that_postgres_closed_is_replaced(pool, settings, tenant):
    app = create_app(settings)
    async for api in asgi_client(app):
        assert (await api.get("/v1/workers", headers=tenant.as_key)).status_code == 200
        # With a timeout, pg_terminate_backend returns once the backend has exited.
        await pool.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

        # The read's kept connection is gone: it is repeated on a new one.
        assert (await api.get("/v1/workers", headers=tenant.as_key)).status_code == 200
        assert (await api.get("/v1/workers", headers=tenant.as_key)).status_code == 200


async def test_liveness_filters_fall_back_to_the_persisted_heartbeats_without_redis(
    api_without_redis, pool, redis, settings, tenant
):
    ids = {}
    for name in ("recent", "old", "never"):
        ids[name], _, _ = await management.create_worker(pool, redis, settings, tenant.org_id, name)
    await pool.execute(
        "UPDATE workers SET last_heartbeat_at = now() - interval '5 seconds' WHERE id = $1",
        ids["recent"],
    )
    await pool.execute(
        "UPDATE workers SET last_heartbeat_at = now() - interval '1 hour' WHERE id = $1", ids["old"]
    )

    for liveness, expected in (("online", ["recent"]), ("offline", ["old"]),
                               ("never,offline", ["never", "old"])):  # fmt: skip
        r = await api_without_redis.get(f"/v1/workers?liveness={liveness}", headers=tenant.as_key)
        assert r.status_code == 200, r.text
        assert r.headers["X-Heartbeat-Data"] == "durable-only"
        assert sorted(w["name"] for w in r.json()["workers"]) == expected, liveness
    r = await api_without_redis.get("/v1/workers/summary", headers=tenant.as_key)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
