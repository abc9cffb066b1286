"""Every list and detail body validates against Den's published list and get-worker schemas."""

from __future__ import annotations

import pytest

from api import management
from tests.api.contract import assert_valid


@pytest.fixture
async def fleet(pool, redis, settings, tenant, ingest):
    """Workers in every state the bodies can describe: never beat, beating (Den and Kubiya),
    persisted only, with and without an instance, with nulls and with every optional field."""
    bare, _, _ = await management.create_worker(pool, redis, settings, tenant.org_id, "bare")
    full, full_token, _ = await management.create_worker(
        pool, redis, settings, tenant.org_id, "full", tenant.user_id,
        description="GPU box", destination="cloud", image_version="1.2.3",
        workspace_path="/srv/ws", sandbox_backend="daytona",
    )  # fmt: skip
    kubiya, kubiya_token, _ = await management.create_worker(
        pool, redis, settings, tenant.org_id, "k"
    )
    await pool.execute(
        "INSERT INTO worker_instances (id, worker_id, provider, region, url, status)"
        " VALUES ('ins_a', $1, 'render', NULL, 'https://w.example.com', 'live')",
        full,
    )
    await pool.execute(
        "UPDATE workers SET last_heartbeat_at = '2024-02-29T12:00:00.5Z',"
        " last_active_at = '2024-02-29T11:59:00Z', open_session_count = 0 WHERE id = $1",
        bare,
    )
    beat = await ingest.post(
        f"/v1/workers/{full}/activity-heartbeat",
        json={"isActiveRecently": True, "openSessionCount": 1},
        headers={"Authorization": f"Bearer {full_token}"},
    )
    assert beat.status_code == 200
    beat = await ingest.post(
        "/api/v1/workers/heartbeat",
        json={"worker_id": kubiya, "environment_name": "e", "worker_metadata": {"a": [1]}},
        headers={"Authorization": f"Bearer {kubiya_token}"},
    )
    assert beat.status_code == 204
    return [bare, full, kubiya]


async def test_list_bodies_validate_against_the_den_schema(api, tenant, fleet):
    r = await api.get("/v1/workers", headers=tenant.as_user)
    assert r.status_code == 200
    assert len(r.json()["workers"]) == 3
    assert_valid("WorkerListResponse", r.json())
    paged = await api.get("/v1/workers", params={"limit": 1}, headers=tenant.as_key)
    assert paged.json()["nextCursor"]
    assert_valid("WorkerListResponse", paged.json())


async def test_empty_list_validates_against_the_den_schema(api, tenant):
    r = await api.get("/v1/workers", headers=tenant.as_user)
    assert r.json()["workers"] == []
    assert_valid("WorkerListResponse", r.json())


async def test_detail_bodies_validate_against_the_den_schema(api, tenant, fleet):
    for worker_id in fleet:
        r = await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_user)
        assert r.status_code == 200
        assert_valid("WorkerResponse", r.json())


async def test_error_bodies_validate_against_the_den_schemas(api, tenant):
    r = await api.get("/v1/workers", params={"limit": 0}, headers=tenant.as_user)
    assert_valid("InvalidRequestError", r.json())
    r = await api.get("/v1/workers/wrk_bad", headers=tenant.as_user)
    assert_valid("InvalidRequestError", r.json())
    r = await api.get("/v1/workers")
    assert_valid("UnauthorizedError", r.json())
    r = await api.get("/v1/workers/wrk_01jqz3k5m2a8b9c0d1e2f3g4h5", headers=tenant.as_user)
    assert r.status_code == 404
    assert_valid("NotFoundError", r.json())
