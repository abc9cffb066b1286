"""`POST /api/v1/workers/heartbeat`, checked against the published Kubiya contract."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.contract import keys, registry, typeid
from shared.contract.times import now_ms
from shared.contract.tokens import hash_secret, issue_worker_token, new_api_key
from shared.settings import Settings
from tests.conftest import register
from tests.ingest import contracts
from tests.ingest.contracts import KUBIYA_HEARTBEAT

URL = "/api/v1/workers/heartbeat"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def body_for(worker_id: str, **fields: Any) -> dict[str, Any]:
    return {"worker_id": worker_id, "environment_name": "prod", **fields}


async def stored(redis: Redis, settings: Settings, worker_id: str) -> dict[str, str]:
    raw = await redis.hgetall(keys.worker_key(worker_id, settings.shards))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def org_key(redis: Redis, org_id: str) -> str:
    key = new_api_key()
    await registry.register_api_key(redis, hash_secret(key), org_id)
    return key


def assert_validation_error(response: httpx.Response, loc: list[str | int], kind: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    contracts.assert_matches(body, contracts.response(KUBIYA_HEARTBEAT, 422))
    (detail,) = body["detail"]
    assert detail["loc"] == loc
    assert detail["type"] == kind
    assert detail["msg"]


async def test_beat_with_the_worker_token_is_204_and_stored(ingest, redis, settings):
    worker = await register(redis, settings)
    body = body_for(
        worker.id,
        status="busy",
        tasks_processed=7,
        current_task_id="task-42",
        worker_metadata={"region": "eu", "slots": [1, 2]},
    )
    assert contracts.is_valid(body, contracts.request_body(KUBIYA_HEARTBEAT))
    before = now_ms()
    r = await ingest.post(URL, json=body, headers=auth(worker.token))
    after = now_ms()
    assert r.status_code == 204, r.text
    assert r.content == b""
    fields = await stored(redis, settings, worker.id)
    assert before <= int(fields[keys.F_HEARTBEAT]) <= after
    assert fields[keys.F_STATUS] == "busy"
    assert fields[keys.F_TASKS] == "7"
    assert fields[keys.F_TASK_ID] == "task-42"
    assert fields[keys.F_ENVIRONMENT] == "prod"
    assert json.loads(fields[keys.F_METADATA]) == {"region": "eu", "slots": [1, 2]}


async def test_defaults_of_the_contract_are_stored(ingest, redis, settings):
    worker = await register(redis, settings)
    r = await ingest.post(URL, json=body_for(worker.id), headers=auth(worker.token))
    assert r.status_code == 204
    fields = await stored(redis, settings, worker.id)
    assert fields[keys.F_STATUS] == "active"
    assert fields[keys.F_TASKS] == "0"
    assert keys.F_TASK_ID not in fields
    assert json.loads(fields[keys.F_METADATA]) == {}


async def test_null_current_task_clears_the_stored_one(ingest, redis, settings):
    worker = await register(redis, settings)
    busy = body_for(worker.id, current_task_id="t1")
    assert (await ingest.post(URL, json=busy, headers=auth(worker.token))).status_code == 204
    idle = body_for(worker.id, current_task_id=None)
    assert (await ingest.post(URL, json=idle, headers=auth(worker.token))).status_code == 204
    assert keys.F_TASK_ID not in await stored(redis, settings, worker.id)


async def test_den_and_kubiya_fields_share_one_worker_hash(ingest, redis, settings):
    worker = await register(redis, settings)
    den = await ingest.post(
        f"/v1/workers/{worker.id}/activity-heartbeat",
        json={"isActiveRecently": True, "openSessionCount": 4},
        headers=auth(worker.token),
    )
    assert den.status_code == 200
    kubiya = body_for(worker.id, status="idle", tasks_processed=3)
    assert (await ingest.post(URL, json=kubiya, headers=auth(worker.token))).status_code == 204
    fields = await stored(redis, settings, worker.id)
    assert fields[keys.F_OPEN_SESSIONS] == "4"
    assert fields[keys.F_ACTIVE_RECENTLY] == "1"
    assert fields[keys.F_STATUS] == "idle"
    assert fields[keys.F_TASKS] == "3"
    assert fields[keys.F_ORG] == worker.org_id


async def test_org_api_key_may_beat_for_a_worker_of_its_org(ingest, redis, settings):
    worker = await register(redis, settings)
    key = await org_key(redis, worker.org_id)
    r = await ingest.post(URL, json=body_for(worker.id), headers=auth(key))
    assert r.status_code == 204
    assert keys.F_HEARTBEAT in await stored(redis, settings, worker.id)


async def test_org_api_key_for_another_orgs_worker_is_404_not_a_silent_204(ingest, redis, settings):
    worker = await register(redis, settings)
    key = await org_key(redis, typeid.new_id(typeid.ORG))
    r = await ingest.post(URL, json=body_for(worker.id), headers=auth(key))
    assert r.status_code == 404
    assert r.json() == {"detail": "Worker not found."}
    assert keys.F_HEARTBEAT not in await stored(redis, settings, worker.id)


async def test_unknown_api_key_is_401(ingest, redis, settings):
    worker = await register(redis, settings)
    r = await ingest.post(URL, json=body_for(worker.id), headers=auth(new_api_key()))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert isinstance(r.json()["detail"], str)


async def test_revoked_api_key_is_401_once_the_cache_expires(redis, settings):
    from ingest.app import create_app
    from tests.conftest import asgi_client, make_settings

    settings = make_settings(settings.redis_url, apikey_cache_ttl=0.001)
    worker = await register(redis, settings)
    key = await org_key(redis, worker.org_id)
    async for client in asgi_client(create_app(settings)):
        assert (
            await client.post(URL, json=body_for(worker.id), headers=auth(key))
        ).status_code == 204
        await registry.revoke_api_key(redis, hash_secret(key))
        deadline = time.monotonic() + 5
        while True:
            r = await client.post(URL, json=body_for(worker.id), headers=auth(key))
            if r.status_code != 204 or time.monotonic() > deadline:
                break
        assert r.status_code == 401


@pytest.mark.parametrize(
    "worker_id",
    [
        "wrk_" + "0" * 25,
        "not-a-typeid",
        "org_01h455vb4pex5vsknk084sn02q",
        "wrk_81h455vb4pex5vsknk084sn02q",
    ],
)
async def test_malformed_worker_id_with_an_api_key_is_404(ingest, redis, settings, worker_id):
    key = await org_key(redis, typeid.new_id(typeid.ORG))
    r = await ingest.post(URL, json=body_for(worker_id), headers=auth(key))
    assert r.status_code == 404


async def test_unregistered_worker_is_404(ingest, redis, settings):
    org = typeid.new_id(typeid.ORG)
    key = await org_key(redis, org)
    r = await ingest.post(URL, json=body_for(typeid.new_id(typeid.WORKER)), headers=auth(key))
    assert r.status_code == 404


async def test_deleted_worker_is_404(ingest, redis, settings):
    worker = await register(redis, settings)
    await registry.unregister_worker(redis, settings.shards, worker.id)
    r = await ingest.post(URL, json=body_for(worker.id), headers=auth(worker.token))
    assert r.status_code == 404
    assert await stored(redis, settings, worker.id) == {}


async def test_worker_token_for_another_worker_id_is_401(ingest, redis, settings):
    worker, other = await register(redis, settings), await register(redis, settings)
    r = await ingest.post(URL, json=body_for(worker.id), headers=auth(other.token))
    assert r.status_code == 401


async def test_rotated_worker_token_is_401(ingest, redis, settings):
    worker = await register(redis, settings)
    await registry.register_worker(redis, settings.shards, worker.id, worker.org_id, 2)
    r = await ingest.post(URL, json=body_for(worker.id), headers=auth(worker.token))
    assert r.status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Token abc"},
        {"Authorization": "Bearer garbage"},
        {"x-den-worker-heartbeat-token": "ignored-here"},
    ],
)
async def test_missing_or_bad_credentials_are_401(ingest, redis, settings, headers):
    worker = await register(redis, settings)
    if "x-den-worker-heartbeat-token" in headers:
        headers = {"x-den-worker-heartbeat-token": worker.token}
    r = await ingest.post(URL, json=body_for(worker.id), headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


async def test_non_ascii_bearer_is_401_not_500(ingest, redis, settings):
    worker = await register(redis, settings)
    for value in (b"Bearer \xff\xfe", b"Bearer hbk_\xe9t\xe9", b"Bearer hbw.k1.x.\xb2.y"):
        r = await ingest.post(URL, json=body_for(worker.id), headers=[(b"authorization", value)])
        assert r.status_code == 401, value


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"environment_name": "prod"}, ["body", "worker_id"], "missing"),
        ({"worker_id": "w"}, ["body", "environment_name"], "missing"),
        ({"worker_id": 5, "environment_name": "prod"}, ["body", "worker_id"], "value_error"),
        (
            {"worker_id": "w", "environment_name": "p", "tasks_processed": "many"},
            ["body", "tasks_processed"],
            "value_error",
        ),
        (
            {"worker_id": "w", "environment_name": "p", "worker_metadata": []},
            ["body", "worker_metadata"],
            "value_error",
        ),
        (
            {"worker_id": "w", "environment_name": "p", "current_task_id": 3},
            ["body", "current_task_id"],
            "value_error",
        ),
        ([], ["body"], "value_error"),
    ],
)
async def test_invalid_body_is_422_in_the_validation_error_shape(
    ingest, redis, settings, body, loc, kind
):
    worker = await register(redis, settings)
    r = await ingest.post(URL, json=body, headers=auth(worker.token))
    assert_validation_error(r, loc, kind)
    assert not contracts.is_valid(body, contracts.request_body(KUBIYA_HEARTBEAT))


async def test_body_is_validated_before_credentials(ingest):
    r = await ingest.post(URL, json={"environment_name": "prod"})
    assert_validation_error(r, ["body", "worker_id"], "missing")


async def test_malformed_json_is_422(ingest, redis, settings):
    worker = await register(redis, settings)
    for content in (b"{not json", b"", b'{"worker_id": "\\ud800", "environment_name": "x"}'):
        r = await ingest.post(
            URL,
            content=content,
            headers={**auth(worker.token), "content-type": "application/json"},
        )
        assert_validation_error(r, ["body"], "json_invalid")


async def test_deeply_nested_metadata_is_422_not_500(ingest, redis, settings):
    worker = await register(redis, settings)
    depth = 20_000
    content = (
        b'{"worker_id": "' + worker.id.encode() + b'", "environment_name": "p", '
        b'"worker_metadata": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
    )
    assert len(content) < settings.max_body_bytes
    r = await ingest.post(
        URL, content=content, headers={**auth(worker.token), "content-type": "application/json"}
    )
    assert_validation_error(r, ["body"], "json_invalid")


async def test_non_json_content_type_is_422(ingest, redis, settings):
    worker = await register(redis, settings)
    r = await ingest.post(
        URL,
        content=json.dumps(body_for(worker.id)),
        headers={**auth(worker.token), "content-type": "text/plain"},
    )
    assert r.status_code == 422
    contracts.assert_matches(r.json(), contracts.response(KUBIYA_HEARTBEAT, 422))


async def test_body_over_the_limit_is_413_json(ingest, redis, settings):
    worker = await register(redis, settings)
    body = body_for(worker.id, worker_metadata={"blob": "x" * settings.max_body_bytes})
    r = await ingest.post(URL, json=body, headers=auth(worker.token))
    assert r.status_code == 413
    assert isinstance(r.json()["detail"], str)


async def test_unicode_values_are_stored_exactly(ingest, redis, settings):
    worker = await register(redis, settings)
    body = body_for(
        worker.id,
        environment_name="製品-prod",
        status="bêta",
        current_task_id="tâche-🚀",
        worker_metadata={"note": "naïve ☃"},
    )
    assert (await ingest.post(URL, json=body, headers=auth(worker.token))).status_code == 204
    fields = await stored(redis, settings, worker.id)
    assert fields[keys.F_ENVIRONMENT] == "製品-prod"
    assert fields[keys.F_STATUS] == "bêta"
    assert fields[keys.F_TASK_ID] == "tâche-🚀"
    assert json.loads(fields[keys.F_METADATA]) == {"note": "naïve ☃"}


async def test_valid_token_for_an_unregistered_worker_is_404(ingest, settings):
    worker_id = typeid.new_id(typeid.WORKER)
    token = issue_worker_token(settings.token_keys, "k1", worker_id, 1)
    r = await ingest.post(URL, json=body_for(worker_id), headers=auth(token))
    assert r.status_code == 404


async def test_a_negative_task_count_is_422_and_not_stored(ingest, redis, settings):
    worker = await register(redis, settings)
    r = await ingest.post(
        URL, json=body_for(worker.id, tasks_processed=-1), headers=auth(worker.token)
    )
    assert_validation_error(r, ["body", "tasks_processed"], "greater_than_equal")
    assert keys.F_HEARTBEAT not in await stored(redis, settings, worker.id)


async def test_metadata_beyond_the_default_limit_is_422_and_not_stored(ingest, redis, settings):
    worker = await register(redis, settings)
    metadata = {"blob": "x" * 60_000}  # under the body limit, far over the metadata one
    r = await ingest.post(
        URL, json=body_for(worker.id, worker_metadata=metadata), headers=auth(worker.token)
    )
    assert_validation_error(r, ["body", "worker_metadata"], "value_error")
    assert keys.F_HEARTBEAT not in await stored(redis, settings, worker.id)


async def test_metadata_is_measured_as_stored_up_to_the_configured_limit(redis, settings):
    from ingest.app import create_app
    from tests.conftest import asgi_client, make_settings

    settings = make_settings(settings.redis_url, max_metadata_bytes=100)
    worker = await register(redis, settings)
    at_limit = {"k": "x" * 92}  # {"k":"xx...x"}: 8 bytes of JSON around the value
    assert len(json.dumps(at_limit, separators=(",", ":"))) == 100
    async for client in asgi_client(create_app(settings)):
        body = body_for(worker.id, worker_metadata=at_limit)
        assert (await client.post(URL, json=body, headers=auth(worker.token))).status_code == 204
        over = body_for(worker.id, worker_metadata={"k": "x" * 93})
        r = await client.post(URL, json=over, headers=auth(worker.token))
        assert_validation_error(r, ["body", "worker_metadata"], "value_error")
    assert json.loads((await stored(redis, settings, worker.id))[keys.F_METADATA]) == at_limit
