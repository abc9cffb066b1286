import asyncio

from arq.worker import create_worker

from flusher.worker import Backoff, every, worker_settings
from shared.contract.times import now_ms
from tests.conftest import make_settings
from tests.flusher.conftest import add_worker, den_beat, persisted
from tests.flusher.test_failures import eventually
from tests.flusher.test_reconcile import den_status

HOUR = 3_600_000


def test_intervals_become_cron_schedules():
    assert every(5) == {"second": set(range(0, 60, 5))}
    assert every(0.2) == {"second": set(range(60))}
    assert every(300) == {"minute": {0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55}, "second": 0}
    assert every(7200) == {"hour": set(range(0, 24, 2)), "minute": 0, "second": 0}


def test_backoff_doubles_up_to_its_ceiling_and_resets_on_success():
    backoff = Backoff(first=1, ceiling=5)
    assert [backoff.failed() for _ in range(5)] == [1, 2, 4, 5, 5]
    assert not backoff.ready()
    backoff.succeeded()
    assert backoff.ready()


async def test_two_arq_workers_restore_the_registry_and_persist_beats(
    ingest, redis, pool, redis_url, database_url
):
    settings = make_settings(redis_url, database_url, flush_interval=1)
    probe = await add_worker(pool, redis, settings)
    workers = [await add_worker(pool, redis, settings) for _ in range(10)]
    await redis.flushall()  # Redis lost everything; the flushers' start must repair it
    flushers = [
        create_worker(worker_settings(settings), handle_signals=False, poll_delay=0.05)
        for _ in range(2)
    ]
    runs = [asyncio.create_task(w.async_run()) for w in flushers]
    try:

        async def registry_back() -> bool:
            return await den_status(ingest, probe) == 200

        await eventually(registry_back, what="the startup reconcile")
        sent = now_ms() - HOUR
        for n, worker in enumerate(workers):
            await den_beat(ingest, worker, sent + n, openSessionCount=n)

        async def all_persisted() -> bool:
            rows = [await persisted(pool, w.id) for w in workers]
            return all(r["last_heartbeat_at"] == sent + n for n, r in enumerate(rows))

        await eventually(all_persisted, what="the cron flush")
        assert [(await persisted(pool, w.id))["open_session_count"] for w in workers] == list(
            range(10)
        )
    finally:
        for w in flushers:
            await w.close()
        await asyncio.gather(*runs, return_exceptions=True)


def test_the_job_queue_can_live_apart_from_the_hot_store():
    from flusher.worker import worker_settings
    from shared.settings import load_settings

    env = {"HB_REDIS_URL": "redis://hot:6379/0", "HB_QUEUE_REDIS_URL": "redis://queue:6380/2"}
    queue = worker_settings(load_settings(env, require_token_keys=False)).redis_settings
    assert (queue.host, queue.port, queue.database) == ("queue", 6380, 2)
    same = worker_settings(load_settings({"HB_REDIS_URL": "redis://hot:6379/0"},
                                         require_token_keys=False)).redis_settings  # fmt: skip
    assert (same.host, same.port) == ("hot", 6379)


async def test_a_flush_runs_as_soon_as_the_stores_answer_again_despite_the_backoff(
    ingest, redis, pool, redis_url, database_url
):
    from flusher.worker import flush_dirty, shutdown, startup

    settings = make_settings(redis_url, database_url)
    worker = await add_worker(pool, redis, settings)
    ctx = {"settings": settings}
    await startup(ctx)
    try:
        for _ in range(7):  # an outage long enough for the delay to reach its ceiling
            ctx["backoff"].failed()
        assert not ctx["backoff"].ready()
        sent = now_ms() - HOUR
        await den_beat(ingest, worker, sent)

        assert await flush_dirty(ctx) == 1
        assert (await persisted(pool, worker.id))["last_heartbeat_at"] == sent
        assert ctx["backoff"].ready()
    finally:
        await shutdown(ctx)
