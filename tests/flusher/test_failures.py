import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from flusher.drain import drain_all
from flusher.worker import Backoff, flush_dirty, startup
from hb.embedded import EmbeddedPostgres
from shared.contract import keys
from shared.contract.times import now_ms
from shared.postgres.migrate import migrate
from shared.postgres.pool import POSTGRES_DOWN
from tests.conftest import make_settings
from tests.flusher.conftest import add_worker, den_beat, persisted
from tests.flusher.test_drain import HOUR, dirty_and_inflight

ROOT = Path(__file__).resolve().parents[2]


async def eventually(condition, what: str, within: float = 20.0) -> None:
    """Poll `condition` until it holds, failing after `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def inflight(redis, settings) -> int:
    return sum(
        [
            keys.inflight_workers(await redis.hkeys(keys.claims_key(s)))
            for s in range(settings.shards)
        ]
    )


async def test_flusher_killed_between_claim_and_ack_loses_nothing(
    ingest, redis, pool, settings, redis_url, database_url, tmp_path
):
    base = now_ms() - HOUR
    workers = [await add_worker(pool, redis, settings) for _ in range(20)]
    for n, worker in enumerate(workers):
        await den_beat(ingest, worker, base + n, isActiveRecently=True, openSessionCount=n)

    marker = tmp_path / "claimed"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.flusher.drain_child", redis_url, database_url, str(marker),
        cwd=ROOT,
    )  # fmt: skip
    try:

        async def claimed() -> bool:
            assert child.returncode is None, "the child flusher exited early"
            return marker.exists()

        await eventually(claimed, what="the child flusher to claim")
        assert await inflight(redis, settings) == len(workers)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()

    async def persisted_all() -> bool:
        await drain_all(redis, pool, settings)
        rows = [await persisted(pool, w.id) for w in workers]
        return all(r["last_heartbeat_at"] is not None for r in rows)

    await eventually(persisted_all, what="the expired leases to be drained")
    for n, worker in enumerate(workers):
        row = await persisted(pool, worker.id)
        assert (row["last_heartbeat_at"], row["open_session_count"]) == (base + n, n)
    assert await dirty_and_inflight(redis, settings) == 0


@pytest.fixture
async def own_postgres(tmp_path, pg_server_url):
    if os.environ.get("HB_TEST_DATABASE_URL"):
        pytest.skip("needs the embedded Postgres, which this test stops and starts")
    server = EmbeddedPostgres(tmp_path / "pg")
    server.start()
    yield server
    server.stop()


async def test_postgres_stopped_and_restarted_mid_run_loses_nothing(
    ingest, redis, settings, redis_url, own_postgres, caplog
):
    database_url = own_postgres.url()
    await migrate(database_url)
    flusher_settings = make_settings(redis_url, database_url, flush_chunk=50)
    ctx = {"settings": flusher_settings}
    await startup(ctx)
    ctx["backoff"] = Backoff(first=0)  # retry at every run, so the test needn't wait
    pool = ctx["pool"]
    try:
        base = now_ms() - HOUR
        workers = [await add_worker(pool, redis, settings) for _ in range(30)]
        for n, worker in enumerate(workers):
            await den_beat(ingest, worker, base + n, isActiveRecently=True, openSessionCount=n)

        # Postgres goes away after the claim, before the write.
        async def stop_postgres(claims) -> None:
            await asyncio.to_thread(own_postgres.stop)

        with pytest.raises(POSTGRES_DOWN):
            await drain_all(redis, pool, flusher_settings, after_claim=stop_postgres)
        # The claimed workers went straight back to dirty.
        assert await inflight(redis, settings) == 0
        assert await dirty_and_inflight(redis, settings) == len(workers)

        # While it is down: the job logs and carries on, and ingest keeps accepting beats.
        assert await flush_dirty(ctx) == 0
        assert "dirty workers stay in Redis" in caplog.text
        for n, worker in enumerate(workers):
            await den_beat(ingest, worker, base + 1000 + n, isActiveRecently=True,
                           openSessionCount=100 + n)  # fmt: skip
        assert await flush_dirty(ctx) == 0
        assert await dirty_and_inflight(redis, settings) == len(workers)

        await asyncio.to_thread(own_postgres.start)  # same port, same data directory

        async def caught_up() -> bool:
            await flush_dirty(ctx)
            return await dirty_and_inflight(redis, settings) == 0

        await eventually(caught_up, what="the flusher to catch up after the restart")
        for n, worker in enumerate(workers):
            row = await persisted(pool, worker.id)
            assert (row["last_heartbeat_at"], row["open_session_count"]) == (base + 1000 + n,
                                                                             100 + n)  # fmt: skip
    finally:
        await ctx["pool"].close()
        await ctx["hot"].aclose()
