from __future__ import annotations

from shared.contract import registry
from shared.contract.tokens import hash_secret


async def test_a_created_key_is_shown_once_and_works(api, redis, tenant):
    r = await api.post("/v1/api-keys", json={"name": "ci"}, headers=tenant.as_user)

    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    key = r.json()["apiKey"]
    assert key["name"] == "ci" and key["createdByUserId"] == tenant.user_id
    assert key["revokedAt"] is None
    assert (await api.get("/v1/workers", headers={"x-api-key": secret})).status_code == 200
    assert await registry.api_key_org(redis, hash_secret(secret)) == tenant.org_id
    listed = await api.get("/v1/api-keys", headers=tenant.as_user)
    assert secret not in listed.text
    assert {k["id"] for k in listed.json()["apiKeys"]} == {key["id"], tenant.api_key_id}


async def test_a_revoked_key_is_refused_and_leaves_the_registry(api, redis, tenant):
    r = await api.delete(f"/v1/api-keys/{tenant.api_key_id}", headers=tenant.as_user)

    assert r.status_code == 204
    assert (await api.get("/v1/workers", headers=tenant.as_key)).status_code == 401
    assert await registry.api_key_org(redis, hash_secret(tenant.api_key)) is None
    listed = (await api.get("/v1/api-keys", headers=tenant.as_user)).json()["apiKeys"]
    assert listed[0]["revokedAt"] is not None
    again = await api.delete(f"/v1/api-keys/{tenant.api_key_id}", headers=tenant.as_user)
    assert again.status_code == 404


async def test_keys_are_managed_by_a_session_not_by_another_key(api, tenant):
    r = await api.post("/v1/api-keys", json={"name": "x"}, headers=tenant.as_key)
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"
    assert (await api.get("/v1/api-keys", headers=tenant.as_key)).status_code == 403
    assert (await api.get("/v1/api-keys")).status_code == 401


async def test_another_organizations_key_cannot_be_revoked_or_listed(api, tenant, other_tenant):
    r = await api.delete(f"/v1/api-keys/{tenant.api_key_id}", headers=other_tenant.as_user)
    assert r.status_code == 404
    listed = (await api.get("/v1/api-keys", headers=other_tenant.as_user)).json()["apiKeys"]
    assert [k["id"] for k in listed] == [other_tenant.api_key_id]


async def test_invalid_key_requests_are_invalid_request(api, tenant):
    r = await api.post("/v1/api-keys", json={}, headers=tenant.as_user)
    assert (r.status_code, r.json()["details"][0]["path"]) == (400, ["name"])
    r = await api.delete("/v1/api-keys/wrk_01jqz3k5m2a8b9c0d1e2f3g4h5", headers=tenant.as_user)
    assert r.status_code == 400
