"""The ingest service describes itself at /openapi.json, and its responses keep to it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from jsonschema import Draft202012Validator
from redis.asyncio import Redis

from ingest.app import create_app
from ingest.openapi_routes import ingest_document
from shared.contract import registry, typeid
from shared.contract.tokens import hash_secret, new_api_key
from tests.conftest import RegisteredWorker, register
from tests.openapi_support import assert_conforms, assert_operation_covers_contract, fuzz

DEN = "/v1/workers/{id}/activity-heartbeat"
KUBIYA = "/api/v1/workers/heartbeat"
KUBIYA_WORKER = "/api/v1/workers/{worker_id}/heartbeat"
KUBIYA_DISCONNECT = "/api/v1/workers/{worker_id}/disconnect"
DOC = ingest_document()


async def test_the_document_is_served_as_openapi_3_1(ingest: httpx.AsyncClient) -> None:
    response = await ingest.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) >= {
        DEN, KUBIYA, KUBIYA_WORKER, KUBIYA_DISCONNECT, "/health", "/ready", "/metrics",
    }  # fmt: skip
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    "contract",
    ["den_heartbeat", "kubiya_heartbeat", "kubiya_worker_heartbeat", "kubiya_worker_disconnect"],
)
def test_the_heartbeat_routes_match_the_published_contracts(contract: str) -> None:
    assert_operation_covers_contract(DOC, contract)


async def test_real_den_responses_conform(ingest: httpx.AsyncClient, redis: Redis, settings):
    worker = await register(redis, settings)
    auth = {"Authorization": f"Bearer {worker.token}"}
    path = f"/v1/workers/{worker.id}/activity-heartbeat"
    unknown = RegisteredWorker(settings, typeid.new_id(typeid.WORKER), "")
    cases = [
        (200, path, {"isActiveRecently": True, "openSessionCount": 2}, auth),
        (400, path, {"isActiveRecently": "yes"}, auth),
        (400, "/v1/workers/nope/activity-heartbeat", {"isActiveRecently": True}, auth),
        (401, path, {"isActiveRecently": True}, {}),
        (404, f"/v1/workers/{unknown.id}/activity-heartbeat", {"isActiveRecently": True},
         {"Authorization": f"Bearer {unknown.token}"}),
    ]  # fmt: skip
    for status, url, body, headers in cases:
        response = await ingest.post(url, json=body, headers=headers)
        assert response.status_code == status, response.text
        assert_conforms(DOC, DEN, "post", status, response.json())


async def test_real_kubiya_responses_conform(ingest: httpx.AsyncClient, redis: Redis, settings):
    worker = await register(redis, settings)
    auth = {"Authorization": f"Bearer {worker.token}"}
    body = {"worker_id": worker.id, "environment_name": "prod"}
    assert (await ingest.post(KUBIYA, json=body, headers=auth)).status_code == 204
    for status, payload, headers in [(422, {"worker_id": worker.id}, auth), (401, body, {})]:
        response = await ingest.post(KUBIYA, json=payload, headers=headers)
        assert response.status_code == status
        assert_conforms(DOC, KUBIYA, "post", status, response.json())


async def test_real_kubiya_per_worker_responses_conform(
    ingest: httpx.AsyncClient, redis: Redis, settings
):
    worker = await register(redis, settings)
    auth = {"Authorization": f"Bearer {worker.token}"}
    key = new_api_key()
    await registry.register_api_key(redis, hash_secret(key), worker.org_id)
    for route in (KUBIYA_WORKER, KUBIYA_DISCONNECT):
        url = route.format(worker_id=worker.id)
        assert (await ingest.post(url, json={}, headers=auth)).status_code == 204
        cases = [
            (422, url, {"tasks_processed": -1, "exit_code": "x"}, auth),
            (401, url, {}, {}),
            (404, route.format(worker_id="wrk_nope"), {}, {"Authorization": f"Bearer {key}"}),
        ]
        for status, path, payload, headers in cases:
            response = await ingest.post(path, json=payload, headers=headers)
            assert response.status_code == status, response.text
            assert_conforms(DOC, route, "post", status, response.json())


def test_fuzzed_requests_get_no_5xx_and_conforming_responses(settings, redis_url) -> None:
    """Most requests aim at a registered worker with its token, so bodies reach the store."""
    import asyncio

    from redis.asyncio import Redis as AsyncRedis

    async def registered() -> RegisteredWorker:
        client = AsyncRedis.from_url(redis_url)
        try:
            return await register(client, settings)
        finally:
            await client.aclose()

    worker = asyncio.run(registered())

    def prepare(case: Any) -> dict[str, Any]:
        for name in ("id", "worker_id"):
            if case.path_parameters and typeid.is_valid(str(case.path_parameters.get(name)), "wrk"):
                case.path_parameters[name] = worker.id
        if isinstance(case.body, dict) and isinstance(case.body.get("worker_id"), str):
            case.body["worker_id"] = worker.id
        return {"headers": {"Authorization": f"Bearer {worker.token}"}}

    fuzz(schemathesis.openapi.from_asgi("/openapi.json", create_app(settings)), prepare)
