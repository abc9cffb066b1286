from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from shared.contract.times import format_ms, to_ms
from shared.settings import Settings
from tests.conftest import RegisteredWorker, make_settings, register


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    """Ingest and flusher share these, as they would in one deployment."""
    return make_settings(redis_url, database_url, flush_chunk=50)


async def add_worker(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, org_id: str | None = None
) -> RegisteredWorker:
    """A worker as the API creates it: its organization and row in Postgres, then the registry."""
    worker = await register(redis, settings, org_id)
    await pool.execute(
        "INSERT INTO organizations (id, name) VALUES ($1, 'org') ON CONFLICT DO NOTHING",
        worker.org_id,
    )
    await pool.execute(
        "INSERT INTO workers (id, org_id, name) VALUES ($1, $2, 'w')", worker.id, worker.org_id
    )
    return worker


async def den_beat(
    ingest: httpx.AsyncClient, worker: RegisteredWorker, sent_ms: int, **body: Any
) -> dict[str, Any]:
    body.setdefault("isActiveRecently", False)
    r = await ingest.post(
        f"/v1/workers/{worker.id}/activity-heartbeat",
        json={"sentAt": format_ms(sent_ms), **body},
        headers={"Authorization": f"Bearer {worker.token}"},
    )
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def kubiya_beat(ingest: httpx.AsyncClient, worker: RegisteredWorker, **body: Any) -> None:
    r = await ingest.post(
        "/api/v1/workers/heartbeat",
        json={"worker_id": worker.id, "environment_name": "prod", **body},
        headers={"Authorization": f"Bearer {worker.token}"},
    )
    assert r.status_code == 204, r.text


async def persisted(pool: asyncpg.Pool, worker_id: str) -> dict[str, Any]:
    """The worker's heartbeat columns, timestamps as ms."""
    row = await pool.fetchrow("SELECT * FROM workers WHERE id = $1", worker_id)
    assert row is not None
    out = dict(row)
    for name in ("last_heartbeat_at", "last_active_at"):
        out[name] = to_ms(row[name]) if row[name] is not None else None
    return out
