"""Kubiya beats carrying values Postgres cannot hold are refused before they reach Redis, so
one bad beat can never stall the flusher's batches for everybody."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.contract import keys
from tests.conftest import register

KUBIYA = "/api/v1/workers/heartbeat"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("environment_name", "prod\u0000"),
        ("status", "\u0000"),
        ("current_task_id", "t\u00001"),
        ("worker_metadata", {"note": "a\u0000b"}),
        ("worker_metadata", {"nested": [{"\u0000": 1}]}),
        ("tasks_processed", 2**63),
    ],
)
async def test_a_value_postgres_cannot_store_is_a_422(
    ingest: httpx.AsyncClient, redis: Redis, settings, field: str, value: Any
) -> None:
    worker = await register(redis, settings)
    body = {"worker_id": worker.id, "environment_name": "prod", field: value}
    response = await ingest.post(
        KUBIYA, json=body, headers={"Authorization": f"Bearer {worker.token}"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    stored = await redis.hget(keys.worker_key(worker.id, settings.shards), keys.F_HEARTBEAT)
    assert stored is None


async def test_the_largest_bigint_and_plain_text_are_accepted(
    ingest: httpx.AsyncClient, redis: Redis, settings
) -> None:
    worker = await register(redis, settings)
    body = {"worker_id": worker.id, "environment_name": "prod", "tasks_processed": 2**63 - 1,
            "worker_metadata": {"path": "C:\\u0000dir"}}  # fmt: skip
    response = await ingest.post(
        KUBIYA, json=body, headers={"Authorization": f"Bearer {worker.token}"}
    )
    assert response.status_code == 204
