"""Replaying what Kubiya's released worker (kubiya-control-plane-api 1.0.2) sends, unchanged,
and checking what the API then shows: in list and detail, before and after the flusher
persisted it, and from Postgres alone.

The worker authenticates with its org's API key, sends a lightweight beat every interval, a full
beat (system info and the log lines since the previous one) every five minutes, and a disconnect
when it stops."""

from __future__ import annotations

from typing import Any

import httpx
from redis.asyncio import Redis

from api.openapi_routes import api_document
from flusher.drain import drain_all
from shared.contract import keys
from tests.api.conftest import Tenant
from tests.api.contract import assert_valid
from tests.contract_facts import kubiya as released
from tests.openapi_support import assert_conforms

DOC = api_document()
DISCONNECT_FIELDS = ("disconnectedAt", "disconnectReason", "exitCode", "errorMessage")


class ReleasedWorker:
    """Sends what the released worker sends, the way it sends it."""

    def __init__(self, ingest: httpx.AsyncClient, worker_id: str, api_key: str) -> None:
        self.ingest = ingest
        self.worker_id = worker_id
        self.headers = {"Authorization": f"Bearer {api_key}"}

    async def _post(self, action: str, body: dict[str, Any]) -> None:
        url = f"/api/v1/workers/{self.worker_id}/{action}"
        r = await self.ingest.post(url, json=body, headers=self.headers)
        assert r.status_code in (200, 204), r.text  # what the worker counts as success

    async def lightweight_beat(self, **fields: Any) -> None:
        await self._post("heartbeat", released.released_worker_lightweight_beat(**fields))

    async def full_beat(self, logs: list[str], **fields: Any) -> None:
        await self._post("heartbeat", released.released_worker_full_beat(logs, **fields))

    async def disconnect(self, **fields: Any) -> None:
        await self._post("disconnect", released.released_worker_disconnect(**fields))


async def detail(api: httpx.AsyncClient, tenant: Tenant, worker_id: str) -> dict[str, Any]:
    r = await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_user)
    assert r.status_code == 200, r.text
    body = r.json()
    assert_valid("WorkerResponse", body)  # Den's published schema still holds
    assert_conforms(DOC, "/v1/workers/{id}", "get", 200, body)
    worker: dict[str, Any] = body["worker"]
    return worker


async def listed(api: httpx.AsyncClient, tenant: Tenant, worker_id: str) -> dict[str, Any]:
    r = await api.get("/v1/workers", headers=tenant.as_user)
    assert r.status_code == 200, r.text
    body = r.json()
    assert_valid("WorkerListResponse", body)
    assert_conforms(DOC, "/v1/workers", "get", 200, body)
    (worker,) = [w for w in body["workers"] if w["id"] == worker_id]
    assert "recentLogs" not in worker  # the detail's only
    return worker


async def both(api: httpx.AsyncClient, tenant: Tenant, worker_id: str) -> dict[str, Any]:
    """The detail, after checking that the list shows the same worker."""
    one = await detail(api, tenant, worker_id)
    entry = await listed(api, tenant, worker_id)
    assert {k: v for k, v in one.items() if k != "recentLogs"} == {
        k: v for k, v in entry.items() if k != "instance"
    }
    return one


async def forget_hot_state(redis: Redis, shards: int, worker_id: str) -> None:
    """Leave Redis with the registry entry only (org, token version), as after it lost its data
    and the flusher's reconcile rebuilt the registry: what the API shows is then Postgres'."""
    key = keys.worker_key(worker_id, shards)
    registry_fields = {keys.F_ORG, keys.F_TOKEN_VERSION}
    hot = [f for f in await redis.hkeys(key) if f.decode() not in registry_fields]
    await redis.hdel(key, *hot)
    await redis.delete(keys.logs_key(worker_id, shards))


async def new_worker(api: httpx.AsyncClient, tenant: Tenant) -> str:
    created = await api.post("/v1/workers", json={"name": "kubiya-1"}, headers=tenant.as_user)
    assert created.status_code == 201, created.text
    worker_id: str = created.json()["worker"]["id"]
    return worker_id


async def test_the_released_workers_life_as_the_api_shows_it(
    api, ingest, pool, redis, settings, tenant
):
    worker_id = await new_worker(api, tenant)
    worker = ReleasedWorker(ingest, worker_id, tenant.api_key)

    # Its lightweight beat.
    await worker.lightweight_beat()
    shown = await both(api, tenant, worker_id)
    assert shown["liveness"] == "online"
    assert (shown["reportedStatus"], shown["tasksProcessed"], shown["currentTaskId"]) == (
        "active", 0, None,
    )  # fmt: skip
    assert shown["workerMetadata"] == {}
    assert shown["systemInfo"] is None
    assert shown["recentLogs"] == []
    assert all(shown[name] is None for name in DISCONNECT_FIELDS)

    # Its full beat: a realistic system info and 150 log lines, of which the last 100 are kept.
    lines = released.released_worker_log_lines(150)
    await worker.full_beat(lines, status="busy", tasks_processed=3, current_task_id="exec-7")
    shown = await both(api, tenant, worker_id)
    assert shown["systemInfo"] == released.released_worker_system_info()
    assert shown["recentLogs"] == lines[-released.LOG_LINES_KEPT :]
    assert (shown["reportedStatus"], shown["tasksProcessed"], shown["currentTaskId"]) == (
        "busy", 3, "exec-7",
    )  # fmt: skip
    assert shown["liveness"] == "online"

    # A lightweight beat after it: the system info and the logs stay.
    await worker.lightweight_beat(status="idle", tasks_processed=4)
    shown = await both(api, tenant, worker_id)
    assert shown["systemInfo"] == released.released_worker_system_info()
    assert shown["recentLogs"] == lines[-100:]
    assert (shown["reportedStatus"], shown["tasksProcessed"], shown["currentTaskId"]) == (
        "idle", 4, None,
    )  # fmt: skip
    last_beat = shown["lastHeartbeatAt"]

    # It shuts down: offline at once, with why, its last heartbeat unchanged.
    await worker.disconnect(reason="shutdown", exit_code=0)
    shown = await both(api, tenant, worker_id)
    assert shown["liveness"] == "offline"
    assert shown["lastHeartbeatAt"] == last_beat
    assert shown["disconnectedAt"] >= last_beat
    assert (shown["disconnectReason"], shown["exitCode"], shown["errorMessage"]) == (
        "shutdown", 0, None,
    )  # fmt: skip
    assert shown["systemInfo"] == released.released_worker_system_info()

    # Persisted as it is shown.
    await drain_all(redis, pool, settings)
    assert await both(api, tenant, worker_id) == shown | {"updatedAt": shown["updatedAt"]}
    row = await pool.fetchrow(
        "SELECT system_info, disconnected_at, disconnect_reason, exit_code, error_message,"
        " reported_status FROM workers WHERE id = $1",
        worker_id,
    )
    assert row["disconnected_at"] is not None
    assert (row["disconnect_reason"], row["exit_code"], row["error_message"]) == (
        "shutdown", 0, None,
    )  # fmt: skip
    assert row["reported_status"] == "idle"

    # A beat after it: online again, the disconnect cleared (in Redis, then in Postgres).
    await worker.lightweight_beat()
    shown = await both(api, tenant, worker_id)
    assert shown["liveness"] == "online"
    assert all(shown[name] is None for name in DISCONNECT_FIELDS)
    assert shown["lastHeartbeatAt"] >= last_beat
    await drain_all(redis, pool, settings)
    row = await pool.fetchrow(
        "SELECT disconnected_at, disconnect_reason, exit_code FROM workers WHERE id = $1",
        worker_id,
    )
    assert tuple(row) == (None, None, None)

    # From Postgres alone: the system info is durable, the recent logs live in Redis only.
    await forget_hot_state(redis, settings.shards, worker_id)
    durable = await both(api, tenant, worker_id)
    assert durable["systemInfo"] == released.released_worker_system_info()
    assert (durable["reportedStatus"], durable["liveness"]) == ("active", "online")
    assert durable["recentLogs"] == []
    assert all(durable[name] is None for name in DISCONNECT_FIELDS)


async def test_a_crash_is_served_from_postgres_once_flushed(
    api, ingest, pool, redis, settings, tenant
):
    worker_id = await new_worker(api, tenant)
    worker = ReleasedWorker(ingest, worker_id, tenant.api_key)
    await worker.full_beat(released.released_worker_log_lines(5))
    await worker.disconnect(reason="crash", exit_code=137, error_message="Killed: out of memory")
    in_redis = await both(api, tenant, worker_id)
    assert in_redis["liveness"] == "offline"

    await drain_all(redis, pool, settings)
    await forget_hot_state(redis, settings.shards, worker_id)
    durable = await both(api, tenant, worker_id)
    assert durable["liveness"] == "offline"
    for name in (*DISCONNECT_FIELDS, "systemInfo", "lastHeartbeatAt", "reportedStatus"):
        assert durable[name] == in_redis[name], name
    assert (durable["disconnectReason"], durable["exitCode"], durable["errorMessage"]) == (
        "crash", 137, "Killed: out of memory",
    )  # fmt: skip
    assert durable["recentLogs"] == []


async def test_a_disconnect_before_any_beat_shows_offline(
    api, ingest, pool, redis, settings, tenant
):
    worker_id = await new_worker(api, tenant)
    worker = ReleasedWorker(ingest, worker_id, tenant.api_key)
    await worker.disconnect(reason="error", exit_code=1, error_message="no Temporal credentials")
    shown = await both(api, tenant, worker_id)
    assert (shown["liveness"], shown["lastHeartbeatAt"]) == ("offline", None)
    assert shown["disconnectReason"] == "error"
    await drain_all(redis, pool, settings)
    row = await pool.fetchrow(
        "SELECT disconnect_reason, last_heartbeat_at FROM workers WHERE id = $1", worker_id
    )
    assert tuple(row) == ("error", None)
