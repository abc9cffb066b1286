from __future__ import annotations

import pytest

from shared.contract import keys
from shared.contract.tokens import verify_worker_token


async def create(api, headers, **body):
    return await api.post("/v1/workers", json={"name": "builder"} | body, headers=headers)


async def beat(ingest, worker_id, token):
    return await ingest.post(
        f"/v1/workers/{worker_id}/activity-heartbeat",
        json={"isActiveRecently": False},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_create_returns_the_worker_and_its_heartbeat_token_once(
    api, ingest, settings, tenant
):
    r = await create(
        api, tenant.as_user, description="d", destination="cloud", imageVersion="2.0",
        workspacePath="/w", sandboxBackend="docker",
    )  # fmt: skip
    assert r.status_code == 201, r.text
    body = r.json()
    worker = body["worker"]
    assert worker["orgId"] == tenant.org_id
    assert worker["createdByUserId"] == tenant.user_id and worker["isMine"] is True
    assert (worker["destination"], worker["imageVersion"], worker["sandboxBackend"]) == (
        "cloud", "2.0", "docker",
    )  # fmt: skip
    assert worker["status"] == "provisioning" and worker["liveness"] == "never"
    claim = verify_worker_token(settings.token_keys, body["heartbeatToken"])
    assert claim is not None and claim.worker_id == worker["id"]
    assert (await beat(ingest, worker["id"], body["heartbeatToken"])).status_code == 200
    detail = await api.get(f"/v1/workers/{worker['id']}", headers=tenant.as_user)
    assert "heartbeatToken" not in detail.text


async def test_an_api_key_can_create_workers_without_a_creator(api, tenant):
    r = await create(api, tenant.as_key)
    assert r.status_code == 201
    assert r.json()["worker"]["createdByUserId"] is None


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({}, ["name"]),
        ({"name": ""}, ["name"]),
        ({"name": "   "}, ["name"]),
        ({"name": 3}, ["name"]),
        ({"name": "w", "destination": "moon"}, ["destination"]),
        ({"name": "w", "surprise": True}, []),
    ],
)
async def test_invalid_worker_bodies_are_invalid_request_with_details(api, tenant, body, path):
    r = await api.post("/v1/workers", json=body, headers=tenant.as_user)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert r.json()["details"][0]["path"] == path


async def test_a_body_that_is_not_json_is_invalid_request(api, tenant):
    r = await api.post("/v1/workers", content=b"{nope", headers=tenant.as_user)
    assert r.status_code == 400
    assert r.json()["details"][0]["message"] == "The request body is not valid JSON."


async def test_management_needs_credentials(api):
    assert (await api.post("/v1/workers", json={"name": "w"})).status_code == 401
    some_id = "wrk_01jqz3k5m2a8b9c0d1e2f3g4h5"
    assert (await api.delete(f"/v1/workers/{some_id}")).status_code == 401
    assert (await api.post(f"/v1/workers/{some_id}/heartbeat-token")).status_code == 401


async def test_rotating_the_token_refuses_the_old_one(api, ingest, redis, settings, tenant):
    created = (await create(api, tenant.as_user)).json()
    worker_id, old = created["worker"]["id"], created["heartbeatToken"]

    r = await api.post(f"/v1/workers/{worker_id}/heartbeat-token", headers=tenant.as_key)

    assert r.status_code == 200, r.text
    assert r.json()["workerId"] == worker_id and r.json()["tokenVersion"] == 2
    new = r.json()["heartbeatToken"]
    assert (await beat(ingest, worker_id, old)).status_code == 401
    assert (await beat(ingest, worker_id, new)).status_code == 200
    key = keys.worker_key(worker_id, settings.shards)
    assert await redis.hget(key, keys.F_TOKEN_VERSION) == b"2"


async def test_deleting_a_worker_hides_it_and_ingest_answers_404(api, ingest, tenant):
    created = (await create(api, tenant.as_user)).json()
    worker_id, token = created["worker"]["id"], created["heartbeatToken"]

    r = await api.delete(f"/v1/workers/{worker_id}", headers=tenant.as_user)

    assert r.status_code == 204
    assert (await beat(ingest, worker_id, token)).status_code == 404
    assert (await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_user)).status_code == 404
    assert (await api.delete(f"/v1/workers/{worker_id}", headers=tenant.as_user)).status_code == 404
    rotate = await api.post(f"/v1/workers/{worker_id}/heartbeat-token", headers=tenant.as_user)
    assert rotate.status_code == 404


async def test_another_organization_cannot_rotate_or_delete(api, tenant, other_tenant):
    worker_id = (await create(api, tenant.as_user)).json()["worker"]["id"]
    path = f"/v1/workers/{worker_id}"
    assert (await api.delete(path, headers=other_tenant.as_key)).status_code == 404
    rotate = await api.post(f"{path}/heartbeat-token", headers=other_tenant.as_user)
    assert rotate.status_code == 404
    assert (await api.get(path, headers=tenant.as_user)).status_code == 200


async def test_malformed_ids_on_management_routes_are_invalid_request(api, tenant):
    assert (await api.delete("/v1/workers/nope", headers=tenant.as_user)).status_code == 400
    r = await api.post("/v1/workers/nope/heartbeat-token", headers=tenant.as_user)
    assert r.status_code == 400


async def test_workers_beyond_the_org_quota_get_403_quota_exceeded(pool, redis, settings, tenant):
    import dataclasses

    from api.app import create_app
    from tests.conftest import asgi_client

    small = dataclasses.replace(settings, max_workers_per_org=2)
    async for api in asgi_client(create_app(small)):
        for n in range(2):
            r = await api.post("/v1/workers", json={"name": f"w{n}"}, headers=tenant.as_key)
            assert r.status_code == 201
        r = await api.post("/v1/workers", json={"name": "w2"}, headers=tenant.as_key)
        assert r.status_code == 403
        assert r.json()["error"] == "quota_exceeded"
        # A deleted worker frees its place.
        first = (await api.get("/v1/workers", headers=tenant.as_key)).json()["workers"][0]
        await api.delete(f"/v1/workers/{first['id']}", headers=tenant.as_key)
        r = await api.post("/v1/workers", json={"name": "w3"}, headers=tenant.as_key)
        assert r.status_code == 201


async def test_api_keys_beyond_the_org_quota_get_403_quota_exceeded(settings, tenant):
    import dataclasses

    from api.app import create_app
    from tests.conftest import asgi_client

    small = dataclasses.replace(settings, max_api_keys_per_org=2)  # the tenant holds one
    async for api in asgi_client(create_app(small)):
        r = await api.post("/v1/api-keys", json={"name": "second"}, headers=tenant.as_user)
        assert r.status_code == 201
        r = await api.post("/v1/api-keys", json={"name": "third"}, headers=tenant.as_user)
        assert (r.status_code, r.json()["error"]) == (403, "quota_exceeded")


async def test_racing_creations_do_not_overshoot_the_quota(pool, redis, settings, tenant):
    import asyncio
    import dataclasses

    from api import management

    small = dataclasses.replace(settings, max_workers_per_org=3)
    results = await asyncio.gather(
        *(management.create_worker(pool, redis, small, tenant.org_id, f"r{n}") for n in range(6)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 3
    assert all(
        isinstance(r, management.QuotaExceeded) for r in results if isinstance(r, BaseException)
    )
