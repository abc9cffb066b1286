"""What Kubiya's per-worker routes add to a worker reaches Postgres with the same batching and
newest-wins rules as the rest: the last system info, and a disconnect until the next beat."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from flusher.claims import ack_claims, claim_dirty
from flusher.drain import drain_all
from flusher.persist import persist_batch
from shared.contract import keys
from shared.contract.times import now_ms
from tests.conftest import RegisteredWorker
from tests.contract_facts import kubiya as released
from tests.flusher.conftest import add_worker, den_beat, kubiya_beat, persisted


async def worker_beat(ingest: httpx.AsyncClient, worker: RegisteredWorker, **body: Any) -> None:
    r = await ingest.post(
        f"/api/v1/workers/{worker.id}/heartbeat",
        json=body,
        headers={"Authorization": f"Bearer {worker.token}"},
    )
    assert r.status_code == 204, r.text


async def disconnect(ingest: httpx.AsyncClient, worker: RegisteredWorker, **body: Any) -> None:
    r = await ingest.post(
        f"/api/v1/workers/{worker.id}/disconnect",
        json=body,
        headers={"Authorization": f"Bearer {worker.token}"},
    )
    assert r.status_code == 204, r.text


async def test_system_info_is_persisted_and_kept_by_lightweight_beats(
    ingest, redis, pool, settings
):
    worker = await add_worker(pool, redis, settings)
    await worker_beat(ingest, worker, **released.released_worker_full_beat(["a", "b"], "busy", 2))
    await drain_all(redis, pool, settings)
    row = await persisted(pool, worker.id)
    assert json.loads(row["system_info"]) == released.released_worker_system_info()
    assert (row["reported_status"], row["tasks_processed"]) == ("busy", 2)

    await worker_beat(ingest, worker, **released.released_worker_lightweight_beat("idle", 3))
    await redis.hdel(keys.worker_key(worker.id, settings.shards), keys.F_SYSTEM_INFO)
    await worker_beat(ingest, worker, status="idle", tasks_processed=4)  # a status change
    await drain_all(redis, pool, settings)
    row = await persisted(pool, worker.id)
    # Redis no longer holds it (say it lost its data): the stored one stays.
    assert json.loads(row["system_info"]) == released.released_worker_system_info()
    assert row["tasks_processed"] == 4


async def test_the_per_worker_route_leaves_the_stored_environment(ingest, redis, pool, settings):
    worker = await add_worker(pool, redis, settings)
    await kubiya_beat(ingest, worker, status="busy")  # environment "prod"
    await drain_all(redis, pool, settings)
    await redis.hdel(keys.worker_key(worker.id, settings.shards), keys.F_ENVIRONMENT)
    await worker_beat(ingest, worker, status="idle")
    await drain_all(redis, pool, settings)
    row = await persisted(pool, worker.id)
    assert (row["environment_name"], row["reported_status"]) == ("prod", "idle")


async def test_a_disconnect_is_persisted_and_the_next_beat_clears_it(ingest, redis, pool, settings):
    worker = await add_worker(pool, redis, settings)
    await worker_beat(ingest, worker)
    await drain_all(redis, pool, settings)
    await disconnect(ingest, worker, reason="error", exit_code=2, error_message="boom")
    assert await drain_all(redis, pool, settings) == 1  # meaningful: written at once
    row = await persisted(pool, worker.id)
    fields = await redis.hgetall(keys.worker_key(worker.id, settings.shards))
    stamped = int(fields[keys.F_DISCONNECTED.encode()])
    assert abs(row["disconnected_at"].timestamp() * 1000 - stamped) < 1
    assert (row["disconnect_reason"], row["exit_code"], row["error_message"]) == (
        "error", 2, "boom",
    )  # fmt: skip
    assert stamped >= row["last_heartbeat_at"]

    await worker_beat(ingest, worker)
    assert await drain_all(redis, pool, settings) == 1
    row = await persisted(pool, worker.id)
    assert (row["disconnected_at"], row["disconnect_reason"], row["exit_code"]) == (
        None,
        None,
        None,
    )
    assert row["error_message"] is None


async def test_a_den_workers_disconnect_is_cleared_by_its_next_den_beat(
    ingest, redis, pool, settings
):
    """A Den-only chunk carries no disconnect columns: its newer beats clear the stored one."""
    worker = await add_worker(pool, redis, settings)
    shard = keys.shard_of(worker.id, settings.shards)
    await den_beat(ingest, worker, now_ms() - 1000)
    await disconnect(ingest, worker, reason="shutdown", exit_code=0)
    claim = await claim_dirty(redis, shard, 10, 60)
    assert claim.live.has_kubiya  # a disconnect travels in the columns beyond Den's
    (row,) = zip(*claim.live.columns, strict=True)
    assert row[12] and row[13:15] == (b"shutdown", b"0")  # dc, dr, dx
    assert row[6] == b""  # no Kubiya status
    assert await persist_batch(pool, claim.live) == 1
    await ack_claims(redis, [claim])
    stored = await persisted(pool, worker.id)
    assert (stored["disconnect_reason"], stored["exit_code"]) == ("shutdown", 0)
    assert stored["reported_status"] is None

    await den_beat(ingest, worker, now_ms())
    claim = await claim_dirty(redis, shard, 10, 60)
    assert not claim.live.has_kubiya
    assert await persist_batch(pool, claim.live) == 1
    await ack_claims(redis, [claim])
    stored = await persisted(pool, worker.id)
    assert (stored["disconnected_at"], stored["disconnect_reason"], stored["exit_code"]) == (
        None, None, None,
    )  # fmt: skip


async def test_an_older_chunk_never_brings_a_cleared_disconnect_back(ingest, redis, pool, settings):
    worker = await add_worker(pool, redis, settings)
    await worker_beat(ingest, worker)
    await disconnect(ingest, worker, reason="crash")
    shard = keys.shard_of(worker.id, settings.shards)
    stale = await claim_dirty(redis, shard, 10, 60)  # holds the disconnect
    await asyncio.sleep(0.005)  # a later millisecond
    await worker_beat(ingest, worker)  # back: clears it
    await drain_all(redis, pool, settings)
    assert (await persisted(pool, worker.id))["disconnect_reason"] is None

    # The stale claim's beat is older than what Postgres now holds: it changes nothing.
    assert await persist_batch(pool, stale.live) == 0
    assert (await persisted(pool, worker.id))["disconnect_reason"] is None
