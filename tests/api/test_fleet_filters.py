from __future__ import annotations

import base64

import pytest

from shared.contract import keys
from shared.contract.times import now_ms
from tests.api.fleet_support import AGES, add_worker, beat, fleet


async def names(api, tenant, query: str) -> list[str]:
    r = await api.get(f"/v1/workers?{query}", headers=tenant.as_key)
    assert r.status_code == 200, r.text
    return sorted(w["name"] for w in r.json()["workers"])


async def test_liveness_filter_keeps_the_workers_of_those_values(
    api, ingest, pool, redis, settings, tenant
):
    await fleet(ingest, pool, redis, settings, tenant)

    for liveness in ("never", "online", "stale", "offline"):
        assert await names(api, tenant, f"liveness={liveness}") == [liveness]
    assert await names(api, tenant, "liveness=online,offline") == ["offline", "online"]
    assert await names(api, tenant, "liveness=never,stale") == ["never", "stale"]
    assert await names(api, tenant, "liveness=online&liveness=never") == ["never", "online"]
    everyone = await names(api, tenant, "liveness=online,stale,offline,never")
    assert everyone == ["never", "offline", "online", "stale"]
    # Each row shows the liveness it matched.
    r = await api.get("/v1/workers?liveness=stale", headers=tenant.as_user)
    assert [w["liveness"] for w in r.json()["workers"]] == ["stale"]


async def test_status_and_name_prefix_filters_combine_with_liveness(
    api, ingest, pool, redis, settings, tenant
):
    ids = await fleet(ingest, pool, redis, settings, tenant)
    await pool.execute(
        "UPDATE workers SET status = 'healthy' WHERE id = ANY($1)", [ids["online"], ids["stale"]]
    )
    await add_worker(pool, redis, settings, tenant, "On_call%")

    assert await names(api, tenant, "status=healthy") == ["online", "stale"]
    assert await names(api, tenant, "status=provisioning,failed") == [
        "On_call%", "never", "offline",
    ]  # fmt: skip
    assert await names(api, tenant, "status=stopped") == []
    assert await names(api, tenant, "q=O") == ["On_call%", "offline", "online"]
    assert await names(api, tenant, "q=oN") == ["On_call%", "online"]
    # LIKE's wildcards are plain characters in a prefix.
    assert await names(api, tenant, "q=on_") == ["On_call%"]
    assert await names(api, tenant, "q=on%25") == []
    assert await names(api, tenant, "q=on&liveness=online,never") == ["On_call%", "online"]
    assert await names(api, tenant, "q=o&status=healthy&liveness=online") == ["online"]


async def test_next_cursor_carries_the_filters(api, ingest, pool, redis, settings, tenant):
    offline = []
    for n in range(5):
        worker_id, token = await add_worker(pool, redis, settings, tenant, f"off{n}")
        await beat(ingest, worker_id, token, AGES["offline"])
        offline.append(worker_id)
        await add_worker(pool, redis, settings, tenant, f"new{n}")  # never beat

    seen: list[str] = []
    r = await api.get("/v1/workers?liveness=offline&limit=2", headers=tenant.as_key)
    while True:
        assert r.status_code == 200, r.text
        seen += [w["id"] for w in r.json()["workers"]]
        cursor = r.json()["nextCursor"]
        if cursor is None:
            break
        # No filters in the next URL: the cursor brings them.
        r = await api.get(f"/v1/workers?limit=2&cursor={cursor}", headers=tenant.as_key)

    assert seen == offline[::-1]

    first = await api.get("/v1/workers?liveness=offline&limit=2", headers=tenant.as_key)
    cursor = first.json()["nextCursor"]
    same = await api.get(
        f"/v1/workers?liveness=offline&limit=2&cursor={cursor}", headers=tenant.as_key
    )
    assert same.status_code == 200
    other = await api.get(f"/v1/workers?liveness=never&cursor={cursor}", headers=tenant.as_key)
    assert other.status_code == 400
    assert other.json()["details"][0]["path"] == ["cursor"]


async def test_an_unfiltered_page_and_its_cursor_are_as_before(
    api, ingest, pool, redis, settings, tenant
):
    for n in range(3):
        await add_worker(pool, redis, settings, tenant, f"w{n}")
    r = await api.get("/v1/workers?limit=2", headers=tenant.as_user)
    raw = base64.urlsafe_b64decode(r.json()["nextCursor"] + "==").decode()
    assert "?" not in raw


@pytest.mark.parametrize(
    "query",
    ["liveness=alive", "liveness=", "liveness=online,", "status=running", "status=Healthy",
     "q=", "q=" + "x" * 201, "q=a&q=b"],
)  # fmt: skip
async def test_unknown_filter_values_are_invalid_request(api, tenant, query):
    r = await api.get(f"/v1/workers?{query}", headers=tenant.as_user)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "invalid_request"
    assert body["details"][0]["path"] == [query.split("=")[0]]


async def test_filters_are_org_scoped_and_need_credentials(
    api, ingest, pool, redis, settings, tenant, other_tenant
):
    await fleet(ingest, pool, redis, settings, tenant)
    assert await names(api, other_tenant, "liveness=online") == []
    assert await names(api, other_tenant, "status=provisioning") == []
    r = await api.get("/v1/workers?liveness=online")
    assert r.status_code == 401
    r = await api.get("/v1/workers?liveness=online", headers={"x-api-key": "hbk_nope"})
    assert r.status_code == 401


async def test_a_worker_changing_liveness_between_pages_is_seen_at_most_once(
    api, ingest, pool, redis, settings, tenant
):
    """Pages follow `created_at desc, id desc`; each page matches liveness when it is read."""
    workers = []
    for n in range(4):
        worker_id, token = await add_worker(pool, redis, settings, tenant, f"w{n}")
        await beat(ingest, worker_id, token)
        workers.append((worker_id, token))
    _, w1, _, w3 = workers

    page1 = await api.get("/v1/workers?liveness=online&limit=2", headers=tenant.as_key)
    assert [w["name"] for w in page1.json()["workers"]] == ["w3", "w2"]
    # Between pages: w1 goes offline (ahead of the cursor: not shown), w3 goes offline and back
    # online (behind the cursor: not shown again).
    cursor = page1.json()["nextCursor"]
    await _go_offline(redis, settings, tenant, w1[0])
    await _go_offline(redis, settings, tenant, w3[0])
    await beat(ingest, w3[0], w3[1])

    page2 = await api.get(f"/v1/workers?cursor={cursor}", headers=tenant.as_key)
    assert [w["name"] for w in page2.json()["workers"]] == ["w0"]
    assert page2.json()["nextCursor"] is None


async def _go_offline(redis, settings, tenant, worker_id: str) -> None:
    """Age a worker's last beat past the offline threshold, as time passing would."""
    old = now_ms() - 1000 * 1000
    shard = keys.shard_of(worker_id, settings.shards)
    await redis.hset(keys.worker_key(worker_id, settings.shards), keys.F_HEARTBEAT, old)
    await redis.zadd(keys.seen_key(shard, tenant.org_id), {worker_id: old})


@pytest.mark.parametrize("walk_max", [4000, 5], ids=["walked", "rare-matches-from-the-index"])
async def test_pages_of_a_filter_are_the_matching_workers_in_list_order(
    api, ingest, pool, redis, settings, tenant, monkeypatch, walk_max
):
    """Several batches of keys per page (or, when matches look rare, the index's ids), and the
    pages together are exactly the matching workers, in the unfiltered list's order."""
    monkeypatch.setattr("api.fleet_list.WALK_MAX", walk_max)
    pattern = ["online", "stale", "offline", "never", "online", "online", "never", "online"]
    liveness_of = {}
    for n in range(40):
        liveness = pattern[n % len(pattern)] if n < 32 else "online"
        worker_id, token = await add_worker(pool, redis, settings, tenant, f"w{n:02}")
        if liveness != "never":
            await beat(ingest, worker_id, token, AGES[liveness])
        liveness_of[f"w{n:02}"] = liveness
    in_order = [w["name"] for w in await _walk(api, tenant, "limit=7")]

    for wanted in ("offline", "never", "stale,offline", "never,offline", "online"):
        got = await _walk(api, tenant, f"liveness={wanted}&limit=3")
        expected = [name for name in in_order if liveness_of[name] in wanted.split(",")]
        assert [w["name"] for w in got] == expected, wanted
        assert {w["liveness"] for w in got} <= set(wanted.split(","))


async def _walk(api, tenant, query: str) -> list[dict]:
    """Every page of a query, following `nextCursor`."""
    workers: list[dict] = []
    url = f"/v1/workers?{query}"
    while True:
        r = await api.get(url, headers=tenant.as_key)
        assert r.status_code == 200, r.text
        workers += r.json()["workers"]
        if r.json()["nextCursor"] is None:
            return workers
        url = f"/v1/workers?limit=3&cursor={r.json()['nextCursor']}"
