from __future__ import annotations

import pytest

from shared.contract import typeid
from tests.api.fleet_support import add_worker


async def test_events_page_newest_first_filtered_and_org_scoped(
    api, pool, redis, settings, tenant, other_tenant
):
    first, _ = await add_worker(pool, redis, settings, tenant, "a")
    second, _ = await add_worker(pool, redis, settings, tenant, "b")
    await add_worker(pool, redis, settings, other_tenant, "elsewhere")
    r = await api.delete(f"/v1/workers/{first}", headers=tenant.as_user)
    assert r.status_code == 204

    r = await api.get("/v1/events", headers=tenant.as_key)
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert [(e["type"], e["workerId"]) for e in events] == [
        ("worker.deleted", first), ("worker.created", second), ("worker.created", first),
    ]  # fmt: skip
    assert events[0]["data"] == {"name": "a"}
    assert set(events[0]) == {"id", "type", "workerId", "at", "data"}

    page = await api.get("/v1/events?limit=2", headers=tenant.as_user)
    cursor = page.json()["nextCursor"]
    rest = await api.get(f"/v1/events?limit=2&cursor={cursor}", headers=tenant.as_user)
    assert [e["id"] for e in page.json()["events"] + rest.json()["events"]] == [
        e["id"] for e in events
    ]
    assert rest.json()["nextCursor"] is None

    typed = await api.get("/v1/events?type=worker.deleted", headers=tenant.as_key)
    assert [e["workerId"] for e in typed.json()["events"]] == [first]
    mine = await api.get(f"/v1/events?workerId={second}", headers=tenant.as_key)
    assert [e["type"] for e in mine.json()["events"]] == ["worker.created"]
    theirs = await api.get("/v1/events", headers=other_tenant.as_key)
    assert [e["type"] for e in theirs.json()["events"]] == ["worker.created"]


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "cursor=abc", "type=worker.exploded", "workerId=wrk_nope"]
)
async def test_invalid_event_queries_are_invalid_request(api, tenant, query):
    r = await api.get(f"/v1/events?{query}", headers=tenant.as_key)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


async def test_events_need_credentials(api):
    for path in ("/v1/events", "/v1/events/stream"):
        r = await api.get(path, headers={"x-api-key": "hbk_nope"})
        assert r.status_code == 401
        assert r.json() == {"error": "unauthorized"}


async def test_a_malformed_last_event_id_is_invalid_request(api, tenant):
    r = await api.get("/v1/events/stream", headers={**tenant.as_key, "Last-Event-ID": "x"})
    assert r.status_code == 400


async def test_a_worker_id_of_another_kind_is_invalid(api, tenant):
    r = await api.get(f"/v1/events?workerId={typeid.new_id(typeid.ORG)}", headers=tenant.as_key)
    assert r.status_code == 400
