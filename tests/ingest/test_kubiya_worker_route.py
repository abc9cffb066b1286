"""Kubiya's per-worker routes (`/api/v1/workers/{worker_id}/heartbeat` and `/disconnect`):
what they store in Redis, and what they refuse, checked against the published contract."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from ingest.app import create_app
from shared.contract import keys, registry, typeid
from shared.contract.times import format_ms, now_ms
from shared.contract.tokens import hash_secret, new_api_key
from shared.settings import Settings
from tests.conftest import asgi_client, make_settings, register
from tests.contract_facts import kubiya as facts
from tests.ingest import contracts

HEARTBEAT = "kubiya_worker_heartbeat"
DISCONNECT = "kubiya_worker_disconnect"


def beat_url(worker_id: str) -> str:
    return f"/api/v1/workers/{worker_id}/heartbeat"


def disconnect_url(worker_id: str) -> str:
    return f"/api/v1/workers/{worker_id}/disconnect"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def stored(redis: Redis, settings: Settings, worker_id: str) -> dict[str, str]:
    raw = await redis.hgetall(keys.worker_key(worker_id, settings.shards))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def recent_logs(redis: Redis, settings: Settings, worker_id: str) -> list[str]:
    return [
        line.decode()
        for line in await redis.lrange(keys.logs_key(worker_id, settings.shards), 0, -1)
    ]


async def org_key(redis: Redis, org_id: str) -> str:
    key = new_api_key()
    await registry.register_api_key(redis, hash_secret(key), org_id)
    return key


def assert_422(response: httpx.Response, contract: str, loc: list[str | int], kind: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    contracts.assert_matches(body, contracts.response(contract, 422))
    (detail,) = body["detail"]
    assert (detail["loc"], detail["type"]) == (loc, kind)
    assert detail["msg"]


# --- beats -----------------------------------------------------------------------------------


async def test_a_lightweight_beat_with_the_org_api_key_is_204_and_stored(ingest, redis, settings):
    worker = await register(redis, settings)
    key = await org_key(redis, worker.org_id)
    body = facts.released_worker_lightweight_beat("busy", 7, "exec-42")
    assert contracts.is_valid(body, contracts.request_body(HEARTBEAT))
    before = now_ms()
    r = await ingest.post(beat_url(worker.id), json=body, headers=auth(key))
    assert r.status_code == 204, r.text
    assert r.content == b""
    fields = await stored(redis, settings, worker.id)
    assert before <= int(fields[keys.F_HEARTBEAT]) <= now_ms()
    assert (fields[keys.F_STATUS], fields[keys.F_TASKS], fields[keys.F_TASK_ID]) == (
        "busy", "7", "exec-42",
    )  # fmt: skip
    assert json.loads(fields[keys.F_METADATA]) == {}
    assert keys.F_SYSTEM_INFO not in fields and keys.F_ENVIRONMENT not in fields
    assert await recent_logs(redis, settings, worker.id) == []


async def test_the_worker_token_works_too_and_an_empty_body_takes_the_defaults(
    ingest, redis, settings
):
    worker = await register(redis, settings)
    r = await ingest.post(beat_url(worker.id), json={}, headers=auth(worker.token))
    assert r.status_code == 204, r.text
    fields = await stored(redis, settings, worker.id)
    assert (fields[keys.F_STATUS], fields[keys.F_TASKS]) == ("active", "0")
    assert keys.F_TASK_ID not in fields


async def test_the_environment_of_an_earlier_beat_stays(ingest, redis, settings):
    worker = await register(redis, settings)
    older = {"worker_id": worker.id, "environment_name": "prod"}
    assert (
        await ingest.post("/api/v1/workers/heartbeat", json=older, headers=auth(worker.token))
    ).status_code == 204
    assert (
        await ingest.post(beat_url(worker.id), json={"status": "idle"}, headers=auth(worker.token))
    ).status_code == 204
    fields = await stored(redis, settings, worker.id)
    assert (fields[keys.F_ENVIRONMENT], fields[keys.F_STATUS]) == ("prod", "idle")


async def test_a_full_beat_stores_its_system_info_and_a_lightweight_one_keeps_it(
    ingest, redis, settings
):
    worker = await register(redis, settings)
    key = await org_key(redis, worker.org_id)
    full = facts.released_worker_full_beat(facts.released_worker_log_lines(3), "busy", 1)
    full["system_info"]["cwd"] = None  # null fields are not kept, as Kubiya's server does
    full["system_info"]["gpu"] = "A100"  # nor fields it does not describe
    assert (await ingest.post(beat_url(worker.id), json=full, headers=auth(key))).status_code == 204
    expected = {k: v for k, v in facts.released_worker_system_info().items() if k != "cwd"}
    assert json.loads((await stored(redis, settings, worker.id))[keys.F_SYSTEM_INFO]) == expected

    light = facts.released_worker_lightweight_beat("idle", 2)
    assert (
        await ingest.post(beat_url(worker.id), json=light, headers=auth(key))
    ).status_code == 204
    fields = await stored(redis, settings, worker.id)
    assert json.loads(fields[keys.F_SYSTEM_INFO]) == expected
    assert fields[keys.F_STATUS] == "idle"
    assert await recent_logs(redis, settings, worker.id) == full["logs"]


async def test_a_full_beat_with_system_info_is_marked_dirty_even_with_the_same_status(
    ingest, redis, settings
):
    worker = await register(redis, settings)
    dirty = keys.dirty_key(keys.shard_of(worker.id, settings.shards))
    light = facts.released_worker_lightweight_beat()
    assert (
        await ingest.post(beat_url(worker.id), json=light, headers=auth(worker.token))
    ).status_code == 204
    await redis.zrem(dirty, worker.id)  # as if flushed just now
    await redis.hset(keys.worker_key(worker.id, settings.shards), keys.F_PERSISTED, str(now_ms()))
    assert (
        await ingest.post(beat_url(worker.id), json=light, headers=auth(worker.token))
    ).status_code == 204
    assert await redis.zscore(dirty, worker.id) is None  # nothing meaningful changed
    full = facts.released_worker_full_beat([])
    assert (
        await ingest.post(beat_url(worker.id), json=full, headers=auth(worker.token))
    ).status_code == 204
    assert await redis.zscore(dirty, worker.id) is not None


async def test_log_lines_are_appended_and_only_the_last_100_kept(ingest, redis, settings):
    worker = await register(redis, settings)
    lines = facts.released_worker_log_lines(150)
    first = facts.released_worker_full_beat(lines[:70])
    second = facts.released_worker_full_beat(lines[70:])
    for body in (first, second):
        assert (
            await ingest.post(beat_url(worker.id), json=body, headers=auth(worker.token))
        ).status_code == 204
    assert await recent_logs(redis, settings, worker.id) == lines[50:]
    fields = await stored(redis, settings, worker.id)
    assert int(fields[keys.F_LOG_BYTES]) == sum(len(line.encode()) for line in lines[50:])

    one_beat = facts.released_worker_log_lines(150, start=1000)
    body = facts.released_worker_full_beat(one_beat)
    assert (
        await ingest.post(beat_url(worker.id), json=body, headers=auth(worker.token))
    ).status_code == 204
    assert await recent_logs(redis, settings, worker.id) == one_beat[50:]


async def test_log_lines_are_kept_within_the_byte_cap_oldest_dropped_first(redis, settings):
    settings = make_settings(settings.redis_url, max_log_bytes=100)
    worker = await register(redis, settings)
    async for client in asgi_client(create_app(settings)):

        async def send(lines: list[str], client: httpx.AsyncClient = client) -> None:
            body = {"logs": lines}
            r = await client.post(beat_url(worker.id), json=body, headers=auth(worker.token))
            assert r.status_code == 204, r.text

        await send(["a" * 40, "b" * 40])
        assert await recent_logs(redis, settings, worker.id) == ["a" * 40, "b" * 40]
        await send(["c" * 30])  # 110 bytes: the oldest line goes
        assert await recent_logs(redis, settings, worker.id) == ["b" * 40, "c" * 30]
        await send(["é" * 60])  # 120 bytes of UTF-8 alone: cut to the cap, at a character
        assert await recent_logs(redis, settings, worker.id) == ["é" * 50]
        fields = await stored(redis, settings, worker.id)
        assert fields[keys.F_LOG_BYTES] == "100"
        await send(["d" * 10, "e" * 10])
        assert await recent_logs(redis, settings, worker.id) == ["d" * 10, "e" * 10]
        assert (await stored(redis, settings, worker.id))[keys.F_LOG_BYTES] == "20"


async def test_the_logs_list_is_the_one_keys_names_and_goes_with_the_worker(
    ingest, redis, settings
):
    worker = await register(redis, settings)
    body = {"logs": ["one", "two"]}
    assert (
        await ingest.post(beat_url(worker.id), json=body, headers=auth(worker.token))
    ).status_code == 204
    logs = keys.logs_key(worker.id, settings.shards)
    assert logs.startswith(keys.shard_tag(keys.shard_of(worker.id, settings.shards)))
    assert await redis.lrange(logs, 0, -1) == [b"one", b"two"]
    await registry.unregister_worker(redis, settings.shards, worker.id)
    assert await redis.exists(logs) == 0


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"tasks_processed": "many"}, ["body", "tasks_processed"], "value_error"),
        ({"tasks_processed": -1}, ["body", "tasks_processed"], "greater_than_equal"),
        ({"tasks_processed": 2**63}, ["body", "tasks_processed"], "value_error"),
        ({"status": "a\u0000"}, ["body", "status"], "value_error"),
        ({"current_task_id": 3}, ["body", "current_task_id"], "value_error"),
        ({"current_task_id": "t\u00001"}, ["body", "current_task_id"], "value_error"),
        ({"worker_metadata": []}, ["body", "worker_metadata"], "value_error"),
        ({"worker_metadata": {"a": "\u0000"}}, ["body", "worker_metadata"], "value_error"),
        ({"worker_metadata": {"blob": "x" * 9000}}, ["body", "worker_metadata"], "value_error"),
        ({"system_info": []}, ["body", "system_info"], "value_error"),
        ({"system_info": {"pid": "1"}}, ["body", "system_info", "pid"], "value_error"),
        ({"system_info": {"hostname": "h\u0000"}}, ["body", "system_info"], "value_error"),
        ({"system_info": {"cwd": "x" * 9000}}, ["body", "system_info"], "value_error"),
        ({"logs": "one line"}, ["body", "logs"], "value_error"),
        ({"logs": ["ok", 2]}, ["body", "logs", 1], "value_error"),
        ([], ["body"], "value_error"),
    ],
)
async def test_an_invalid_beat_is_422_in_kubiyas_shape_and_not_stored(
    ingest, redis, settings, body: Any, loc: list[str | int], kind: str
):
    worker = await register(redis, settings)
    r = await ingest.post(beat_url(worker.id), json=body, headers=auth(worker.token))
    assert_422(r, HEARTBEAT, loc, kind)
    assert keys.F_HEARTBEAT not in await stored(redis, settings, worker.id)


async def test_the_body_is_checked_before_the_credentials(ingest):
    r = await ingest.post(beat_url(typeid.new_id(typeid.WORKER)), json={"logs": 1})
    assert_422(r, HEARTBEAT, ["body", "logs"], "value_error")
    r = await ingest.post(
        disconnect_url("nope"), content=b"{", headers={"content-type": "application/json"}
    )
    assert_422(r, DISCONNECT, ["body"], "json_invalid")


@pytest.mark.parametrize("url", [beat_url, disconnect_url])
async def test_credentials_and_workers_are_checked_as_on_kubiyas_other_route(
    ingest, redis, settings, url
):
    worker, other = await register(redis, settings), await register(redis, settings)
    own_key, foreign_key = await org_key(redis, worker.org_id), await org_key(redis, other.org_id)
    cases = [
        (url(worker.id), {}, 401),
        (url(worker.id), auth("garbage"), 401),
        (url(worker.id), auth(new_api_key()), 401),
        (url(worker.id), auth(other.token), 401),  # another worker's token
        (url(worker.id), auth(foreign_key), 404),  # another org's worker
        (url("wrk_nope"), auth(own_key), 404),  # a malformed worker id
        (url(typeid.new_id(typeid.WORKER)), auth(own_key), 404),  # an unknown worker
    ]
    for path, headers, status in cases:
        r = await ingest.post(path, json={}, headers=headers)
        assert r.status_code == status, (path, headers, r.text)
        assert isinstance(r.json()["detail"], str)
        if status == 401:
            assert r.headers["www-authenticate"] == "Bearer"
    assert await stored(redis, settings, worker.id) == {
        keys.F_ORG: worker.org_id, keys.F_TOKEN_VERSION: "1",
    }  # fmt: skip


@pytest.mark.parametrize("url", [beat_url, disconnect_url])
async def test_a_rotated_token_is_401_and_a_deleted_worker_404(ingest, redis, settings, url):
    worker = await register(redis, settings)
    await registry.register_worker(redis, settings.shards, worker.id, worker.org_id, 2)
    assert (
        await ingest.post(url(worker.id), json={}, headers=auth(worker.token))
    ).status_code == 401
    deleted = await register(redis, settings)
    await registry.unregister_worker(redis, settings.shards, deleted.id)
    assert (
        await ingest.post(url(deleted.id), json={}, headers=auth(deleted.token))
    ).status_code == 404


@pytest.mark.parametrize("url", [beat_url, disconnect_url])
async def test_while_the_registry_is_rebuilt_an_unknown_worker_is_503_not_404(
    ingest, redis, settings, url
):
    worker = await register(redis, settings)
    await redis.delete(keys.worker_key(worker.id, settings.shards))  # as if Redis lost it
    await redis.delete(keys.synced_key(keys.shard_of(worker.id, settings.shards)))
    r = await ingest.post(url(worker.id), json={}, headers=auth(worker.token))
    assert r.status_code == 503
    assert r.headers["retry-after"] == str(settings.retry_after)
    assert isinstance(r.json()["detail"], str)


async def test_a_body_over_the_limit_is_413(ingest, redis, settings):
    worker = await register(redis, settings)
    body = {"logs": ["x" * settings.max_body_bytes]}
    r = await ingest.post(beat_url(worker.id), json=body, headers=auth(worker.token))
    assert r.status_code == 413
    assert isinstance(r.json()["detail"], str)


# --- disconnects -----------------------------------------------------------------------------


async def test_a_disconnect_is_stored_at_or_after_the_last_heartbeat(ingest, redis, settings):
    worker = await register(redis, settings)
    key = await org_key(redis, worker.org_id)
    assert (await ingest.post(beat_url(worker.id), json={}, headers=auth(key))).status_code == 204
    beat_ms = int((await stored(redis, settings, worker.id))[keys.F_HEARTBEAT])
    body = facts.released_worker_disconnect("shutdown", 0)
    assert contracts.is_valid(body, contracts.request_body(DISCONNECT))
    r = await ingest.post(disconnect_url(worker.id), json=body, headers=auth(key))
    assert r.status_code == 204, r.text
    fields = await stored(redis, settings, worker.id)
    assert int(fields[keys.F_DISCONNECTED]) >= beat_ms
    assert int(fields[keys.F_HEARTBEAT]) == beat_ms  # a disconnect is not a heartbeat
    assert (fields[keys.F_DISCONNECT_REASON], fields[keys.F_EXIT_CODE]) == ("shutdown", "0")
    assert keys.F_ERROR_MESSAGE not in fields
    dirty = keys.dirty_key(keys.shard_of(worker.id, settings.shards))
    assert await redis.zscore(dirty, worker.id) is not None


async def test_a_disconnect_is_never_stamped_before_the_last_heartbeat(ingest, redis, settings):
    worker = await register(redis, settings)
    ahead = now_ms() + 5_000  # another replica's clock, ahead of this one
    await redis.hset(keys.worker_key(worker.id, settings.shards), keys.F_HEARTBEAT, str(ahead))
    r = await ingest.post(disconnect_url(worker.id), json={}, headers=auth(worker.token))
    assert r.status_code == 204
    fields = await stored(redis, settings, worker.id)
    assert fields[keys.F_DISCONNECTED] == str(ahead)
    assert fields[keys.F_DISCONNECT_REASON] == "shutdown"  # Kubiya's default


async def test_a_crash_replaces_an_earlier_disconnect_whole(ingest, redis, settings):
    worker = await register(redis, settings)
    first = facts.released_worker_disconnect("error", 1, "boom")
    second = facts.released_worker_disconnect("crash", None, None)
    for body in (first, second):
        r = await ingest.post(disconnect_url(worker.id), json=body, headers=auth(worker.token))
        assert r.status_code == 204
    fields = await stored(redis, settings, worker.id)
    assert fields[keys.F_DISCONNECT_REASON] == "crash"
    assert keys.F_EXIT_CODE not in fields and keys.F_ERROR_MESSAGE not in fields


@pytest.mark.parametrize(
    "den", [False, True], ids=["kubiya-beat-brings-it-back", "den-beat-brings-it-back"]
)
async def test_the_next_beat_clears_the_disconnect(ingest, redis, settings, den):
    worker = await register(redis, settings)
    body = facts.released_worker_disconnect("error", 3, "out of memory")
    assert (
        await ingest.post(disconnect_url(worker.id), json=body, headers=auth(worker.token))
    ).status_code == 204
    if den:
        r = await ingest.post(
            f"/v1/workers/{worker.id}/activity-heartbeat",
            json={"isActiveRecently": False, "sentAt": format_ms(now_ms())},
            headers=auth(worker.token),
        )
        assert r.status_code == 200
    else:
        light = facts.released_worker_lightweight_beat()
        assert (
            await ingest.post(beat_url(worker.id), json=light, headers=auth(worker.token))
        ).status_code == 204
    fields = await stored(redis, settings, worker.id)
    gone = {keys.F_DISCONNECTED, keys.F_DISCONNECT_REASON, keys.F_EXIT_CODE, keys.F_ERROR_MESSAGE}
    assert not gone & set(fields)


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"reason": None}, ["body", "reason"], "value_error"),
        ({"reason": "a\u0000"}, ["body", "reason"], "value_error"),
        ({"exit_code": "0"}, ["body", "exit_code"], "value_error"),
        ({"exit_code": 2**63}, ["body", "exit_code"], "value_error"),
        ({"error_message": 5}, ["body", "error_message"], "value_error"),
        ({"error_message": "x\u0000y"}, ["body", "error_message"], "value_error"),
        ({"error_message": "x" * 9000}, ["body", "error_message"], "value_error"),
        ([], ["body"], "value_error"),
    ],
)
async def test_an_invalid_disconnect_is_422_and_not_stored(
    ingest, redis, settings, body: Any, loc: list[str | int], kind: str
):
    worker = await register(redis, settings)
    r = await ingest.post(disconnect_url(worker.id), json=body, headers=auth(worker.token))
    assert_422(r, DISCONNECT, loc, kind)
    assert keys.F_DISCONNECTED not in await stored(redis, settings, worker.id)


async def test_the_largest_exit_code_and_a_negative_one_are_accepted(ingest, redis, settings):
    worker = await register(redis, settings)
    for code in (2**63 - 1, -(2**63), -11):
        body = {"reason": "crash", "exit_code": code}
        r = await ingest.post(disconnect_url(worker.id), json=body, headers=auth(worker.token))
        assert r.status_code == 204
    assert (await stored(redis, settings, worker.id))[keys.F_EXIT_CODE] == "-11"
