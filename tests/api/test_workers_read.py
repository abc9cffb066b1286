from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from api import management
from shared.contract.times import format_dt
from shared.contract.tokens import hash_secret
from tests.api.conftest import SESSION_TTL


async def add_worker(pool, redis, settings, tenant, name, **fields):
    worker_id, token, _ = await management.create_worker(
        pool, redis, settings, tenant.org_id, name, tenant.user_id, **fields
    )
    return worker_id, token


async def test_list_is_newest_first_with_each_workers_latest_instance(
    api, pool, redis, settings, tenant
):
    older, _ = await add_worker(pool, redis, settings, tenant, "older")
    newer, _ = await add_worker(pool, redis, settings, tenant, "newer", destination="cloud")
    base = datetime(2025, 3, 1, tzinfo=UTC)
    await pool.execute("UPDATE workers SET created_at = $2 WHERE id = $1", older, base)
    await pool.execute(
        "UPDATE workers SET created_at = $2 WHERE id = $1", newer, base + timedelta(hours=1)
    )
    for n, status in enumerate(["starting", "running"]):
        await pool.execute(
            "INSERT INTO worker_instances (id, worker_id, provider, region, url, status,"
            " created_at, updated_at) VALUES ($1, $2, 'daytona', 'eu', NULL, $3, $4, $4)",
            f"ins_{n}", newer, status, base + timedelta(minutes=n),
        )  # fmt: skip

    r = await api.get("/v1/workers", headers=tenant.as_user)

    assert r.status_code == 200, r.text
    body = r.json()
    assert [w["id"] for w in body["workers"]] == [newer, older]
    assert body["nextCursor"] is None
    first, second = body["workers"]
    assert first["instance"] == {
        "provider": "daytona", "region": "eu", "url": None, "status": "running",
        "createdAt": "2025-03-01T00:01:00.000Z", "updatedAt": "2025-03-01T00:01:00.000Z",
    }  # fmt: skip
    assert first["destination"] == "cloud" and first["createdAt"] == "2025-03-01T01:00:00.000Z"
    assert second["instance"] is None


async def test_pages_follow_the_cursor_without_skipping_or_repeating_ties(
    api, pool, redis, settings, tenant
):
    ids = [(await add_worker(pool, redis, settings, tenant, f"w{n}"))[0] for n in range(5)]
    # Same creation time for all: the id breaks the tie, and the cursor must honour it.
    await pool.execute("UPDATE workers SET created_at = '2025-01-01T00:00:00.123456Z'")

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        r = await api.get("/v1/workers", params=params, headers=tenant.as_key)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [w["id"] for w in body["workers"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(ids, reverse=True)


async def test_default_limit_is_20(api, pool, redis, settings, tenant):
    for n in range(21):
        await add_worker(pool, redis, settings, tenant, f"w{n}")
    body = (await api.get("/v1/workers", headers=tenant.as_user)).json()
    assert len(body["workers"]) == 20
    assert body["nextCursor"] is not None


@pytest.mark.parametrize("limit", ["0", "51", "abc", "1.5", "-1", "", "1e1"])
async def test_limit_outside_1_to_50_or_not_an_integer_is_invalid_request(api, tenant, limit):
    r = await api.get("/v1/workers", params={"limit": limit}, headers=tenant.as_user)
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_request"
    assert body["details"][0]["path"] == ["limit"]


@pytest.mark.parametrize("cursor", ["garbage!", "bm90LWEtY3Vyc29y", "MTIzLndya19ub3Bl"])
async def test_malformed_cursor_is_invalid_request(api, tenant, cursor):
    r = await api.get("/v1/workers", params={"cursor": cursor}, headers=tenant.as_user)
    assert r.status_code == 400
    assert r.json()["details"][0]["path"] == ["cursor"]


async def test_requests_without_valid_credentials_are_unauthorized(api, pool, tenant):
    expired = await management.create_session(pool, tenant.user_id, tenant.org_id, timedelta(0))
    revoked = await management.create_session(pool, tenant.user_id, tenant.org_id, SESSION_TTL)
    await pool.execute(
        "UPDATE sessions SET revoked_at = now() WHERE token_hash = $1", hash_secret(revoked)
    )
    await pool.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", tenant.api_key_id)
    attempts = [
        {},
        {"Authorization": "Bearer hbs_not-a-session"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {revoked}"},
        {"Authorization": f"Basic {tenant.session}"},
        {"x-api-key": tenant.api_key},  # revoked above
    ]
    for headers in attempts:
        r = await api.get("/v1/workers", headers=headers)
        assert (r.status_code, r.json()) == (401, {"error": "unauthorized"}), headers
        r = await api.get("/v1/workers/wrk_01jqz3k5m2a8b9c0d1e2f3g4h5", headers=headers)
        assert r.status_code == 401, headers


async def test_a_caller_sees_only_its_own_organizations_workers(
    api, pool, redis, settings, tenant, other_tenant
):
    mine, _ = await add_worker(pool, redis, settings, tenant, "mine")
    theirs, _ = await add_worker(pool, redis, settings, other_tenant, "theirs")

    listed = (await api.get("/v1/workers", headers=tenant.as_key)).json()["workers"]
    assert [w["id"] for w in listed] == [mine]
    r = await api.get(f"/v1/workers/{theirs}", headers=tenant.as_key)
    assert r.status_code == 404
    assert r.json() == {"error": "worker_not_found", "message": "Worker not found."}
    r = await api.get(f"/v1/workers/{theirs}", headers=other_tenant.as_user)
    assert r.status_code == 200


async def test_unknown_and_deleted_workers_are_not_found(api, pool, redis, settings, tenant):
    worker_id, _ = await add_worker(pool, redis, settings, tenant, "gone")
    await management.delete_worker(pool, redis, settings, tenant.org_id, worker_id)

    assert (await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_user)).status_code == 404
    unknown = "wrk_01jqz3k5m2a8b9c0d1e2f3g4h5"
    assert (await api.get(f"/v1/workers/{unknown}", headers=tenant.as_user)).status_code == 404
    listed = (await api.get("/v1/workers", headers=tenant.as_user)).json()["workers"]
    assert listed == []


@pytest.mark.parametrize(
    "bad_id", ["wrk_123", "org_01jqz3k5m2a8b9c0d1e2f3g4h5", "wrk_81jqz3k5m2a8b9c0d1e2f3g4h5"]
)
async def test_malformed_worker_id_is_invalid_request(api, tenant, bad_id):
    r = await api.get(f"/v1/workers/{bad_id}", headers=tenant.as_user)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert r.json()["details"][0]["path"] == ["id"]


async def test_is_mine_only_for_the_session_user_who_created_the_worker(
    api, pool, redis, settings, tenant
):
    worker_id, _ = await add_worker(pool, redis, settings, tenant, "w")
    colleague = await management.create_user(pool, "colleague@example.com")
    await management.add_membership(pool, tenant.org_id, colleague)
    colleague_session = await management.create_session(pool, colleague, tenant.org_id, SESSION_TTL)

    async def is_mine(headers):
        r = await api.get(f"/v1/workers/{worker_id}", headers=headers)
        return r.json()["worker"]["isMine"]

    assert await is_mine(tenant.as_user) is True
    assert await is_mine({"Authorization": f"Bearer {colleague_session}"}) is False
    assert await is_mine(tenant.as_key) is False


async def test_a_beat_is_visible_as_soon_as_ingest_answered_it(
    api, ingest, pool, redis, settings, tenant
):
    worker_id, token = await add_worker(pool, redis, settings, tenant, "w")
    beat = await ingest.post(
        f"/v1/workers/{worker_id}/activity-heartbeat",
        json={"isActiveRecently": True, "openSessionCount": 2},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert beat.status_code == 200, beat.text

    worker = (await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_user)).json()["worker"]

    assert worker["lastHeartbeatAt"] == beat.json()["lastHeartbeatAt"]
    assert worker["lastActiveAt"] == beat.json()["lastActiveAt"]
    assert worker["isActiveRecently"] is True
    assert worker["openSessionCount"] == 2
    assert worker["liveness"] == "online"
    # Nothing reached Postgres yet: the read merged Redis in.
    assert await pool.fetchval("SELECT last_heartbeat_at FROM workers") is None


async def test_kubiya_fields_are_served(api, ingest, pool, redis, settings, tenant):
    worker_id, token = await add_worker(pool, redis, settings, tenant, "k")
    r = await ingest.post(
        "/api/v1/workers/heartbeat",
        json={
            "worker_id": worker_id, "environment_name": "prod", "status": "busy",
            "tasks_processed": 7, "current_task_id": "task-9",
            "worker_metadata": {"queue": "gpu", "slots": 2},
        },
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert r.status_code == 204, r.text

    worker = (await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_key)).json()["worker"]

    assert worker["reportedStatus"] == "busy"
    assert worker["tasksProcessed"] == 7
    assert worker["currentTaskId"] == "task-9"
    assert worker["environmentName"] == "prod"
    assert worker["workerMetadata"] == {"queue": "gpu", "slots": 2}
    assert worker["liveness"] == "online"


@pytest.mark.parametrize(("age", "liveness"), [(10, "online"), (100, "stale"), (1000, "offline")])
async def test_liveness_is_derived_from_the_servers_clock(
    api, pool, redis, settings, tenant, age, liveness
):
    worker_id, _ = await add_worker(pool, redis, settings, tenant, "w")
    beat_at = datetime.now(UTC) - timedelta(seconds=age)
    await pool.execute(
        "UPDATE workers SET last_heartbeat_at = $2 WHERE id = $1", worker_id, beat_at
    )
    worker = (await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_user)).json()["worker"]
    assert worker["liveness"] == liveness
    assert worker["lastHeartbeatAt"] == format_dt(beat_at)


async def test_more_concurrent_reads_than_pooled_connections_all_get_merged_pages(
    api, pool, redis, settings, tenant, ingest
):
    worker_id, token = await add_worker(pool, redis, settings, tenant, "w")
    beat = await ingest.post(
        f"/v1/workers/{worker_id}/activity-heartbeat",
        json={"isActiveRecently": True},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert beat.status_code == 200

    pages = await asyncio.gather(
        *(api.get("/v1/workers", headers=tenant.as_key) for _ in range(100))
    )

    assert {r.status_code for r in pages} == {200}
    assert not any("X-Heartbeat-Data" in r.headers for r in pages)
    assert {r.json()["workers"][0]["lastHeartbeatAt"] for r in pages} == {
        beat.json()["lastHeartbeatAt"]
    }


@pytest.mark.parametrize(
    "stored",
    [
        datetime(2025, 3, 1, 12, 30, 45, 999_999, tzinfo=UTC),
        datetime(2024, 2, 29, 0, 0, 0, 1_000, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 123_456, tzinfo=UTC),
    ],
)
async def test_times_are_utc_with_milliseconds_truncated(
    api, pool, redis, settings, tenant, stored
):
    worker_id, _ = await add_worker(pool, redis, settings, tenant, "w")
    await pool.execute(
        "UPDATE workers SET created_at = $2, updated_at = $2, last_heartbeat_at = $2,"
        " last_active_at = $2 WHERE id = $1",
        worker_id, stored,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO worker_instances (id, worker_id, provider, status, created_at, updated_at)"
        " VALUES ('ins_t', $1, 'p', 'up', $2, $2)",
        worker_id, stored,
    )  # fmt: skip
    # A session time zone other than UTC changes nothing on the wire.
    database = await pool.fetchval("SELECT current_database()")
    await pool.execute(f"ALTER DATABASE \"{database}\" SET TimeZone = 'Asia/Kolkata'")

    listed = (await api.get("/v1/workers", headers=tenant.as_user)).json()["workers"][0]

    expected = format_dt(stored)
    assert expected.endswith("Z") and len(expected) == len("2025-03-01T12:30:45.999Z")
    times = [listed[k] for k in ("createdAt", "updatedAt", "lastHeartbeatAt", "lastActiveAt")]
    assert times == [expected] * 4
    assert [listed["instance"]["createdAt"], listed["instance"]["updatedAt"]] == [expected] * 2


# "²" is a digit to str.isdigit, but not to int().
UNICODE_DIGIT_CURSOR = "wrIud3JrXzAxanF6M2s1bTJhOGI5YzBkMWUyZjNnNGg1"


async def test_a_cursor_with_a_non_ascii_digit_is_invalid_request(api, tenant):
    r = await api.get("/v1/workers", params={"cursor": UNICODE_DIGIT_CURSOR}, headers=tenant.as_key)
    assert r.status_code == 400, r.text
    assert r.json()["details"][0]["path"] == ["cursor"]


@pytest.mark.parametrize("cursor", [UNICODE_DIGIT_CURSOR, "garbage!", "MTIzLndya19ub3Bl"])
async def test_without_credentials_any_cursor_is_unauthorized(api, cursor):
    r = await api.get("/v1/workers", params={"cursor": cursor})
    assert (r.status_code, r.json()) == (401, {"error": "unauthorized"})


async def test_a_limit_out_of_bounds_is_still_checked_before_credentials(api):
    r = await api.get("/v1/workers", params={"limit": "0"})
    assert r.status_code == 400
    assert r.json()["details"][0]["path"] == ["limit"]


async def test_a_limit_in_non_ascii_digits_is_invalid_request(api, tenant):
    r = await api.get("/v1/workers", params={"limit": "\u0661"}, headers=tenant.as_key)
    assert r.status_code == 400
    assert r.json()["details"][0]["path"] == ["limit"]


async def test_a_session_lasts_the_lifetime_it_was_given(api, pool, tenant):
    lasting = await management.create_session(pool, tenant.user_id, tenant.org_id, SESSION_TTL)
    expires = await pool.fetchval(
        "SELECT expires_at FROM sessions WHERE token_hash = $1", hash_secret(lasting)
    )
    assert abs(expires - (datetime.now(UTC) + SESSION_TTL)) < timedelta(minutes=1)
    auth = {"Authorization": f"Bearer {lasting}"}
    assert (await api.get("/v1/workers", headers=auth)).status_code == 200


async def test_a_session_of_a_user_who_left_the_org_reads_nothing(api, pool, tenant):
    await pool.execute(
        "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2", tenant.org_id, tenant.user_id
    )
    r = await api.get("/v1/workers", headers=tenant.as_user)
    assert (r.status_code, r.json()) == (401, {"error": "unauthorized"})


async def test_no_session_is_created_for_a_user_outside_the_org(pool, tenant, other_tenant):
    with pytest.raises(management.NotAMember):
        await management.create_session(pool, other_tenant.user_id, tenant.org_id, SESSION_TTL)


async def test_the_caller_ends_their_own_session(api, pool, tenant):
    other = await management.create_session(pool, tenant.user_id, tenant.org_id, SESSION_TTL)
    r = await api.delete("/v1/session", headers=tenant.as_user)
    assert r.status_code == 204
    assert (await api.get("/v1/workers", headers=tenant.as_user)).status_code == 401
    # Only that session ends.
    assert (
        await api.get("/v1/workers", headers={"Authorization": f"Bearer {other}"})
    ).status_code == 200


async def test_an_api_key_has_no_session_to_end(api, tenant):
    r = await api.delete("/v1/session", headers=tenant.as_key)
    assert r.status_code == 403
    assert (await api.get("/v1/workers", headers=tenant.as_key)).status_code == 200
    assert (await api.delete("/v1/session")).status_code == 401
