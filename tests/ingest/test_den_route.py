"""`POST /v1/workers/{id}/activity-heartbeat`, checked against the published Den contract."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.contract import keys, registry, typeid
from shared.contract.times import format_ms, now_ms, parse_ms
from shared.contract.tokens import issue_worker_token
from shared.contract.wire import MAX_SAFE_INTEGER
from shared.settings import Settings
from tests.conftest import RegisteredWorker, register
from tests.ingest import contracts
from tests.ingest.contracts import DEN_HEARTBEAT

HOUR = 3_600_000


def url(worker_id: str) -> str:
    return f"/v1/workers/{worker_id}/activity-heartbeat"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def beat(
    client: httpx.AsyncClient, worker: RegisteredWorker, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(url(worker.id), json=body, headers=auth(worker.token))


async def stored(redis: Redis, settings: Settings, worker_id: str) -> dict[str, str]:
    raw = await redis.hgetall(keys.worker_key(worker_id, settings.shards))
    return {k.decode(): v.decode() for k, v in raw.items()}


def assert_contract(response: httpx.Response) -> None:
    """Every answer of the route has the status and body shape the contract publishes."""
    assert response.headers["content-type"].startswith("application/json")
    contracts.assert_matches(
        response.json(), contracts.response(DEN_HEARTBEAT, response.status_code)
    )


async def test_beat_answers_200_with_the_contract_body(ingest, redis, settings):
    worker = await register(redis, settings)
    sent = format_ms(now_ms() - 5_000)
    r = await beat(
        ingest, worker, {"isActiveRecently": True, "sentAt": sent, "openSessionCount": 3}
    )
    assert r.status_code == 200, r.text
    assert_contract(r)
    assert r.json() == {
        "ok": True,
        "workerId": worker.id,
        "isActiveRecently": True,
        "openSessionCount": 3,
        "lastHeartbeatAt": sent,
        "lastActiveAt": sent,
    }


async def test_beat_is_in_redis_when_acknowledged(ingest, redis, settings):
    worker = await register(redis, settings)
    sent = now_ms() - 5_000
    r = await beat(ingest, worker, {"isActiveRecently": False, "sentAt": format_ms(sent)})
    assert r.status_code == 200
    fields = await stored(redis, settings, worker.id)
    assert fields[keys.F_HEARTBEAT] == str(sent)
    assert fields[keys.F_ACTIVE_RECENTLY] == "0"
    assert keys.F_ACTIVE not in fields
    assert r.json()["lastActiveAt"] is None
    assert r.json()["openSessionCount"] is None


async def test_beat_without_sent_at_uses_the_receive_time(ingest, redis, settings):
    worker = await register(redis, settings)
    before = now_ms()
    r = await beat(ingest, worker, {"isActiveRecently": True})
    after = now_ms()
    assert r.status_code == 200
    assert before <= parse_ms(r.json()["lastHeartbeatAt"]) <= after
    assert r.json()["lastActiveAt"] == r.json()["lastHeartbeatAt"]


async def test_token_is_accepted_in_the_den_worker_header(ingest, redis, settings):
    worker = await register(redis, settings)
    r = await ingest.post(
        url(worker.id),
        json={"isActiveRecently": False},
        headers={"x-den-worker-heartbeat-token": worker.token},
    )
    assert r.status_code == 200, r.text


async def test_bearer_scheme_is_case_insensitive(ingest, redis, settings):
    worker = await register(redis, settings)
    r = await ingest.post(
        url(worker.id),
        json={"isActiveRecently": False},
        headers={"Authorization": f"bearer {worker.token}"},
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "bad_id",
    [
        "wrk_" + "0" * 25,  # 29 characters
        "wrk_" + "0" * 27,  # 31 characters
        "org_01h455vb4pex5vsknk084sn02q",  # another type's prefix
        "wrkx01h455vb4pex5vsknk084sn02q",  # no underscore
        "WRK_01h455vb4pex5vsknk084sn02q",  # prefixes are lower case
        "wrk_01h455vb4pex5vsknk084sn0iq",  # 'i' is not Crockford base32
        "wrk_01h455vb4pex5vsknk084sn0uq",  # nor is 'u'
        "wrk_01H455VB4PEX5VSKNK084SN02Q",  # suffixes are lower case
        "wrk_81h455vb4pex5vsknk084sn02q",  # first suffix character above 7 overflows 128 bits
    ],
)
async def test_malformed_path_id_is_400_for_the_id(ingest, bad_id):
    r = await ingest.post(url(bad_id), json={"isActiveRecently": True})
    assert r.status_code == 400
    assert_contract(r)
    (detail,) = r.json()["details"]
    assert detail["path"] == ["id"]
    assert "wrk_" in detail["message"]


async def test_path_id_is_checked_before_the_body(ingest):
    r = await ingest.post(url("wrk_short"), content=b"{not json", headers={"x": "y"})
    assert r.status_code == 400
    assert r.json()["details"][0]["path"] == ["id"]


async def test_body_is_checked_before_the_token(ingest, redis, settings):
    worker = await register(redis, settings)
    r = await ingest.post(
        url(worker.id), json={"isActiveRecently": "yes"}, headers=auth("not-a-token")
    )
    assert r.status_code == 400
    assert r.json()["details"][0]["path"] == ["isActiveRecently"]


async def test_token_is_checked_before_the_worker_exists(ingest):
    r = await ingest.post(
        url(typeid.new_id(typeid.WORKER)), json={"isActiveRecently": True}, headers=auth("bad")
    )
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized"}


async def test_unknown_worker_with_a_valid_token_is_404(ingest, settings):
    worker_id = typeid.new_id(typeid.WORKER)
    token = issue_worker_token(settings.token_keys, "k1", worker_id, 1)
    r = await ingest.post(url(worker_id), json={"isActiveRecently": True}, headers=auth(token))
    assert r.status_code == 404
    assert_contract(r)
    assert r.json()["error"] == "worker_not_found"
    assert r.json()["message"]


async def test_deleted_worker_is_404_and_not_recreated(ingest, redis, settings):
    worker = await register(redis, settings)
    await registry.unregister_worker(redis, settings.shards, worker.id)
    r = await beat(ingest, worker, {"isActiveRecently": True})
    assert r.status_code == 404
    assert r.json()["error"] == "worker_not_found"
    assert await stored(redis, settings, worker.id) == {}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer hbw.k1.wrk_x.1"},
        {"x-den-worker-heartbeat-token": ""},
        {"x-den-worker-heartbeat-token": "garbage"},
    ],
)
async def test_missing_or_malformed_token_is_401(ingest, redis, settings, headers):
    worker = await register(redis, settings)
    r = await ingest.post(url(worker.id), json={"isActiveRecently": True}, headers=headers)
    assert r.status_code == 401
    assert_contract(r)
    assert r.json() == {"error": "unauthorized"}


async def test_token_of_another_worker_is_401(ingest, redis, settings):
    worker, other = await register(redis, settings), await register(redis, settings)
    r = await ingest.post(
        url(worker.id), json={"isActiveRecently": True}, headers=auth(other.token)
    )
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized"}


async def test_rotated_token_version_is_401_and_the_new_one_works(ingest, redis, settings):
    worker = await register(redis, settings)
    await registry.register_worker(redis, settings.shards, worker.id, worker.org_id, 2)
    r = await beat(ingest, worker, {"isActiveRecently": True})
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized"}
    fresh = issue_worker_token(settings.token_keys, "k1", worker.id, 2)
    r = await ingest.post(url(worker.id), json={"isActiveRecently": True}, headers=auth(fresh))
    assert r.status_code == 200


async def test_token_signed_by_the_older_key_of_the_keyring_is_accepted(ingest, redis, settings):
    worker = await register(redis, settings)
    older = issue_worker_token(settings.token_keys, "k0", worker.id, worker.version)
    r = await ingest.post(url(worker.id), json={"isActiveRecently": True}, headers=auth(older))
    assert r.status_code == 200


async def test_token_signed_by_an_unknown_key_id_is_401(ingest, redis, settings):
    worker = await register(redis, settings)
    foreign = issue_worker_token({"k9": b"some-other-signing-key-0123"}, "k9", worker.id, 1)
    r = await ingest.post(url(worker.id), json={"isActiveRecently": True}, headers=auth(foreign))
    assert r.status_code == 401


@pytest.mark.parametrize("where", ["kid", "version", "signature"])
async def test_tampered_token_is_401(ingest, redis, settings, where):
    worker = await register(redis, settings)
    prefix, kid, worker_id, version, signature = worker.token.split(".")
    if where == "kid":
        kid = "k0"  # a real key id, but not the one that signed
    elif where == "version":
        version = "2"
    else:
        signature = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    token = ".".join([prefix, kid, worker_id, version, signature])
    await registry.register_worker(redis, settings.shards, worker.id, worker.org_id, 2)
    r = await ingest.post(url(worker.id), json={"isActiveRecently": True}, headers=auth(token))
    assert r.status_code == 401


async def test_token_with_non_ascii_bytes_is_401_not_500(ingest, redis, settings):
    worker = await register(redis, settings)
    for token in (
        b"\xff\xfe",
        f"hbw.k1.{worker.id}.\xb2.sig".encode("latin-1"),  # a superscript digit as version
        worker.token.encode()[:-1] + b"\xe9",
    ):
        for name in (b"authorization", b"x-den-worker-heartbeat-token"):
            value = b"Bearer " + token if name == b"authorization" else token
            r = await ingest.post(
                url(worker.id), json={"isActiveRecently": True}, headers=[(name, value)]
            )
            assert r.status_code == 401, (name, token)
            assert r.json() == {"error": "unauthorized"}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({}, ["isActiveRecently"]),
        ({"isActiveRecently": None}, ["isActiveRecently"]),
        ({"isActiveRecently": 1}, ["isActiveRecently"]),
        ({"isActiveRecently": True, "sentAt": None}, ["sentAt"]),
        ({"isActiveRecently": True, "sentAt": 1700000000000}, ["sentAt"]),
        ({"isActiveRecently": True, "lastActivityAt": "yesterday"}, ["lastActivityAt"]),
        ({"isActiveRecently": True, "openSessionCount": -1}, ["openSessionCount"]),
        (
            {"isActiveRecently": True, "openSessionCount": MAX_SAFE_INTEGER + 1},
            ["openSessionCount"],
        ),
        ({"isActiveRecently": True, "openSessionCount": 1.5}, ["openSessionCount"]),
        ({"isActiveRecently": True, "openSessionCount": 1e16}, ["openSessionCount"]),
        ({"isActiveRecently": True, "openSessionCount": "3"}, ["openSessionCount"]),
        ({"isActiveRecently": True, "openSessionCount": True}, ["openSessionCount"]),
        ([], []),
        ("isActiveRecently", []),
    ],
)
async def test_invalid_body_is_400_with_the_offending_path(ingest, redis, settings, body, path):
    worker = await register(redis, settings)
    r = await beat(ingest, worker, body)
    assert r.status_code == 400, r.text
    assert_contract(r)
    (detail,) = r.json()["details"]
    assert detail["path"] == path
    assert detail["message"]
    assert not contracts.is_valid(body, contracts.request_body(DEN_HEARTBEAT))


@pytest.mark.parametrize("count", [0, 1, MAX_SAFE_INTEGER])
async def test_open_session_count_bounds_are_accepted_and_echoed_exactly(
    ingest, redis, settings, count
):
    worker = await register(redis, settings)
    r = await beat(ingest, worker, {"isActiveRecently": False, "openSessionCount": count})
    assert r.status_code == 200
    assert_contract(r)
    assert r.json()["openSessionCount"] == count
    assert (await stored(redis, settings, worker.id))[keys.F_OPEN_SESSIONS] == str(count)


@pytest.mark.parametrize(("raw", "count"), [(b"2.0", 2), (b"1e3", 1000), (b"-0.0", 0)])
async def test_integral_float_session_count_is_an_integer_as_in_json_schema(
    ingest, redis, settings, raw, count
):
    worker = await register(redis, settings)
    body = b'{"isActiveRecently": false, "openSessionCount": ' + raw + b"}"
    headers = {**auth(worker.token), "content-type": "application/json"}
    r = await ingest.post(url(worker.id), content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["openSessionCount"] == count
    assert type(r.json()["openSessionCount"]) is int


async def test_unknown_body_fields_are_ignored(ingest, redis, settings):
    worker = await register(redis, settings)
    r = await beat(ingest, worker, {"isActiveRecently": True, "extra": {"nested": [1, 2]}})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("2024-02-29T00:00:00Z", True),
        ("2023-02-29T00:00:00Z", False),
        ("1900-02-29T00:00:00Z", False),
        ("2000-02-29T00:00:00Z", True),
        ("2024-01-01T10:00:00.5Z", True),
        ("2024-01-01T10:00:00.123456789Z", True),
        ("2024-04-31T00:00:00Z", False),
        ("2024-13-01T00:00:00Z", False),
        ("2024-01-01T24:00:00Z", False),
        ("2024-01-01T10:00:60Z", False),
        ("2024-01-01T10:00:00+00:00", False),
        ("2024-01-01T10:00:00+02:00", False),
        ("2024-01-01T10:00:00z", False),
        ("2024-01-01 10:00:00Z", False),
        ("2024-01-01T10:00:00", False),
        ("2024-01-01", False),
        ("", False),
    ],
)
async def test_date_time_pattern_agrees_with_the_contract(ingest, redis, settings, value, accepted):
    body = {"isActiveRecently": True, "sentAt": value, "lastActivityAt": value}
    assert contracts.is_valid(body, contracts.request_body(DEN_HEARTBEAT)) is accepted
    worker = await register(redis, settings)
    for field in ("sentAt", "lastActivityAt"):
        r = await beat(ingest, worker, {"isActiveRecently": True, field: value})
        assert r.status_code == (200 if accepted else 400), (field, r.text)
        assert_contract(r)
        if not accepted:
            assert r.json()["details"][0]["path"] == [field]


# The contract's pattern leaves the seconds optional (RFC 3339 does not): such a time is on the
# minute.
async def test_a_date_time_without_seconds_is_on_the_minute(ingest, redis, settings):
    worker = await register(redis, settings)
    minute = (now_ms() // 60_000 - 2) * 60_000

    def without_seconds(ms: int) -> str:
        return format_ms(ms)[:16] + "Z"

    body = {
        "isActiveRecently": True,
        "sentAt": without_seconds(minute),
        "lastActivityAt": without_seconds(minute - 60_000),
    }
    assert body["sentAt"].count(":") == 1
    r = await beat(ingest, worker, body)
    assert r.status_code == 200, r.text
    assert_contract(r)
    assert r.json()["lastHeartbeatAt"] == format_ms(minute)
    assert r.json()["lastActiveAt"] == format_ms(minute - 60_000)


# To Python's `re` the pattern's `\d` is any Unicode digit; a date-time's digits are 0-9.
@pytest.mark.parametrize(
    "value",
    [
        "\u0660\u0660\u0660\u0660-01-01T00:00:00Z",
        "\u0662\u0660\u0662\u0664-01-01T10:00:00Z",
        "2024-01-01T1\u0660:00:00Z",
        "2024-01-01T10:00:00.\u0661Z",
    ],
)
async def test_a_date_time_with_other_digits_is_400(ingest, redis, settings, value):
    worker = await register(redis, settings)
    for field in ("sentAt", "lastActivityAt"):
        r = await beat(ingest, worker, {"isActiveRecently": True, field: value})
        assert r.status_code == 400, (field, r.text)
        assert_contract(r)
        (detail,) = r.json()["details"]
        assert detail["path"] == [field]
        assert detail["message"]
    assert await stored(redis, settings, worker.id) == {
        keys.F_ORG: worker.org_id,
        keys.F_TOKEN_VERSION: str(worker.version),
    }


async def test_times_are_answered_in_utc_with_millisecond_precision(ingest, redis, settings):
    worker = await register(redis, settings)
    r = await beat(ingest, worker, {"isActiveRecently": True, "sentAt": "2024-01-01T10:00:00Z"})
    assert r.json()["lastHeartbeatAt"] == "2024-01-01T10:00:00.000Z"
    r = await beat(
        ingest, worker, {"isActiveRecently": True, "sentAt": "2024-02-29T23:59:59.98765Z"}
    )
    assert r.json()["lastHeartbeatAt"] == "2024-02-29T23:59:59.987Z"


async def test_ancient_sent_at_is_accepted_without_a_server_error(ingest, redis, settings):
    worker = await register(redis, settings)
    for value in ("0000-02-29T00:00:00Z", "0001-01-01T00:00:00Z", "0999-12-31T23:59:59Z"):
        r = await beat(ingest, worker, {"isActiveRecently": True, "sentAt": value})
        assert r.status_code == 200, (value, r.text)
        assert_contract(r)


async def test_out_of_order_beats_never_move_times_backwards(ingest, redis, settings):
    worker = await register(redis, settings)
    newer, older = now_ms() - 10_000, now_ms() - 20_000
    first = {"isActiveRecently": True, "sentAt": format_ms(newer), "openSessionCount": 2}
    late = {"isActiveRecently": True, "sentAt": format_ms(older), "openSessionCount": 9}
    assert (await beat(ingest, worker, first)).status_code == 200
    r = await beat(ingest, worker, late)
    assert r.status_code == 200
    assert r.json()["lastHeartbeatAt"] == format_ms(newer)
    assert r.json()["lastActiveAt"] == format_ms(newer)
    assert r.json()["openSessionCount"] == 2  # a late beat's values are older news
    fields = await stored(redis, settings, worker.id)
    assert fields[keys.F_HEARTBEAT] == str(newer)
    assert fields[keys.F_ACTIVE] == str(newer)
    assert fields[keys.F_OPEN_SESSIONS] == "2"


async def test_replayed_beat_changes_nothing(ingest, redis, settings):
    worker = await register(redis, settings)
    body = {"isActiveRecently": True, "sentAt": format_ms(now_ms() - 1_000)}
    first = await beat(ingest, worker, body)
    again = await beat(ingest, worker, body)
    assert first.json() == again.json()


async def test_last_active_moves_only_when_active_recently(ingest, redis, settings):
    worker = await register(redis, settings)
    base = now_ms() - HOUR
    active = {"isActiveRecently": True, "sentAt": format_ms(base)}
    assert (await beat(ingest, worker, active)).status_code == 200
    idle = {
        "isActiveRecently": False,
        "sentAt": format_ms(base + 60_000),
        "lastActivityAt": format_ms(base + 50_000),
    }
    r = await beat(ingest, worker, idle)
    assert r.json()["lastHeartbeatAt"] == format_ms(base + 60_000)
    assert r.json()["lastActiveAt"] == format_ms(base)
    assert r.json()["isActiveRecently"] is False
    busy = {
        "isActiveRecently": True,
        "sentAt": format_ms(base + 120_000),
        "lastActivityAt": format_ms(base + 100_000),
    }
    r = await beat(ingest, worker, busy)
    assert r.json()["lastActiveAt"] == format_ms(base + 100_000)
    assert r.json()["isActiveRecently"] is True


async def test_null_last_activity_means_active_at_the_heartbeat(ingest, redis, settings):
    worker = await register(redis, settings)
    sent = format_ms(now_ms() - 1_000)
    r = await beat(
        ingest, worker, {"isActiveRecently": True, "sentAt": sent, "lastActivityAt": None}
    )
    assert r.json()["lastActiveAt"] == sent


async def test_future_sent_at_is_clamped_to_receive_time(ingest, redis, settings):
    worker = await register(redis, settings)
    future = now_ms() + HOUR
    before = now_ms()
    r = await beat(ingest, worker, {"isActiveRecently": True, "sentAt": format_ms(future)})
    after = now_ms()
    assert r.status_code == 200
    received = parse_ms(r.json()["lastHeartbeatAt"])
    assert before <= received <= after
    assert parse_ms(r.json()["lastActiveAt"]) == received
    fields = await stored(redis, settings, worker.id)
    assert int(fields[keys.F_HEARTBEAT]) == received
    assert int(fields[keys.F_SKEW]) == future - received


async def test_future_last_activity_is_clamped_and_its_skew_kept(ingest, redis, settings):
    worker = await register(redis, settings)
    future = now_ms() + HOUR
    before = now_ms()
    r = await beat(ingest, worker, {"isActiveRecently": True, "lastActivityAt": format_ms(future)})
    after = now_ms()
    active = parse_ms(r.json()["lastActiveAt"])
    assert before <= active <= after
    fields = await stored(redis, settings, worker.id)
    assert int(fields[keys.F_SKEW]) == future - active


async def test_future_beat_does_not_stick_in_the_future(ingest, redis, settings):
    """Den's weakness: one beat from a fast clock froze lastHeartbeatAt in the future."""
    worker = await register(redis, settings)
    await beat(ingest, worker, {"isActiveRecently": True, "sentAt": format_ms(now_ms() + HOUR)})
    r = await beat(ingest, worker, {"isActiveRecently": True})
    assert parse_ms(r.json()["lastHeartbeatAt"]) <= now_ms()


async def test_an_unknown_worker_gets_503_while_its_shards_registry_is_being_rebuilt(
    ingest, redis, settings
):
    worker = await register(redis, settings)
    await registry.unregister_worker(redis, settings.shards, worker.id)
    shard = keys.shard_of(worker.id, settings.shards)
    await redis.delete(keys.synced_key(shard))  # as after Redis lost its data

    r = await beat(ingest, worker, {"isActiveRecently": True})
    assert r.status_code == 503
    assert r.headers["retry-after"] == str(settings.retry_after)
    assert r.json()["error"] == "unavailable"
    kubiya = await ingest.post(
        "/api/v1/workers/heartbeat",
        json={"worker_id": worker.id, "environment_name": "prod"},
        headers={"Authorization": f"Bearer {worker.token}"},
    )
    assert kubiya.status_code == 503

    await redis.set(keys.synced_key(shard), "1")  # the flusher's reconcile is done
    assert (await beat(ingest, worker, {"isActiveRecently": True})).status_code == 404


async def test_ingest_is_not_ready_while_the_registry_is_being_rebuilt(ingest, redis):
    assert (await ingest.get("/ready")).status_code == 200
    await redis.delete(keys.REGISTRY_SYNCED)
    r = await ingest.get("/ready")
    assert r.status_code == 503
    assert "rebuilt" in r.json()["message"]
