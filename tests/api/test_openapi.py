"""The API describes itself at /openapi.json, and its responses keep to it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
from jsonschema import Draft202012Validator
from redis.asyncio import Redis

from api import management
from api.app import create_app
from api.openapi_routes import api_document
from shared.contract import typeid
from shared.settings import Settings
from tests.api.conftest import Tenant
from tests.openapi_support import assert_conforms, assert_operation_covers_contract, fuzz

DOC = api_document()


async def test_the_document_is_served_as_openapi_3_1(api: httpx.AsyncClient) -> None:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert {"/v1/workers", "/v1/workers/{id}", "/v1/api-keys"} <= set(document["paths"])
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_workers_carry_kubiyas_system_info_and_disconnect_and_the_detail_its_recent_logs() -> None:
    schemas = DOC["components"]["schemas"]
    added = {"systemInfo", "disconnectedAt", "disconnectReason", "exitCode", "errorMessage"}
    assert added <= set(schemas["Worker"]["required"])
    assert added <= set(schemas["WorkerListItem"]["required"])
    assert "recentLogs" not in schemas["WorkerListItem"]["properties"]
    assert "recentLogs" in schemas["WorkerDetail"]["required"]
    assert schemas["WorkerResponse"]["properties"]["worker"] == {
        "$ref": "#/components/schemas/WorkerDetail"
    }


@pytest.mark.parametrize("contract", ["den_list_workers", "den_get_worker"])
def test_the_worker_reads_match_the_published_contracts(contract: str) -> None:
    assert_operation_covers_contract(DOC, contract)


async def test_real_responses_conform(api: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await api.post("/v1/workers", json={"name": "w1"}, headers=tenant.as_user)
    assert created.status_code == 201
    assert_conforms(DOC, "/v1/workers", "post", 201, created.json())
    worker_id = created.json()["worker"]["id"]
    calls: list[tuple[str, str, str, int, dict[str, str]]] = [
        ("get", "/v1/workers", "/v1/workers", 200, tenant.as_key),
        ("get", "/v1/workers?limit=0", "/v1/workers", 400, tenant.as_key),
        ("get", "/v1/workers", "/v1/workers", 401, {}),
        ("get", f"/v1/workers/{worker_id}", "/v1/workers/{id}", 200, tenant.as_user),
        ("get", f"/v1/workers/{typeid.new_id('wrk')}", "/v1/workers/{id}", 404, tenant.as_key),
        ("get", "/v1/workers/wrk_nope", "/v1/workers/{id}", 400, tenant.as_key),
        ("post", f"/v1/workers/{worker_id}/heartbeat-token", "/v1/workers/{id}/heartbeat-token",
         200, tenant.as_key),
        ("get", "/v1/api-keys", "/v1/api-keys", 200, tenant.as_user),
        ("get", "/v1/api-keys", "/v1/api-keys", 403, tenant.as_key),
    ]  # fmt: skip
    for method, url, path, status, headers in calls:
        response = await api.request(method.upper(), url, headers=headers)
        assert response.status_code == status, (url, response.text)
        assert_conforms(DOC, path, method, status, response.json())
    key = await api.post("/v1/api-keys", json={"name": "ci"}, headers=tenant.as_user)
    assert_conforms(DOC, "/v1/api-keys", "post", 201, key.json())


def test_fuzzed_requests_get_no_5xx_and_conforming_responses(
    settings: Settings, tenant: Tenant, known_worker: str
) -> None:
    """Reads and token rotations are aimed at a real worker half of the time."""

    def prepare(case: Any) -> dict[str, Any]:
        worker = case.path_parameters and case.path_parameters.get("id")
        if (
            case.method in ("GET", "POST")
            and isinstance(worker, str)
            and typeid.is_valid(worker, typeid.WORKER)
            and worker[-1] in "02468acegjmnqrtwy"
        ):
            case.path_parameters["id"] = known_worker  # fmt: skip
        return {"headers": tenant.as_user}

    # Event streams end quickly here, or each fuzzed stream request would wait out the hour.
    app = create_app(replace(settings, event_stream_max=0.05))
    fuzz(schemathesis.openapi.from_asgi("/openapi.json", app), prepare)


@pytest.fixture
async def known_worker(pool: asyncpg.Pool, redis: Redis, settings: Settings, tenant: Tenant) -> str:
    worker_id, _, _ = await management.create_worker(
        pool, redis, settings, tenant.org_id, "known", tenant.user_id
    )
    return worker_id
