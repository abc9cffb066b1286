"""Group commit: concurrent beats share Redis round trips, and each still gets its own answer."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from ingest.app import create_app
from shared.contract import keys, registry, typeid
from shared.contract.times import format_ms, now_ms
from shared.settings import Settings
from tests.conftest import asgi_client, register
from tests.metrics_text import sample


@pytest.fixture
async def app(settings: Settings) -> Starlette:
    return create_app(settings)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async for c in asgi_client(app):
        yield c


async def test_concurrent_beats_are_all_answered_and_the_maxima_stored(
    app, client, redis, settings
):
    rng = random.Random(7)
    workers = [await register(redis, settings) for _ in range(100)]
    base = now_ms() - 3_600_000  # in the past, so clamping to receive time never applies
    beats = []
    for worker in workers:
        # Distinct times per worker so "the newest beat" is unambiguous.
        for offset in rng.sample(range(1_000_000), 10):
            activity = base + offset - rng.randrange(1_000)
            beats.append(
                (
                    worker,
                    {
                        "isActiveRecently": rng.random() < 0.5,
                        "sentAt": format_ms(base + offset),
                        "lastActivityAt": format_ms(activity),
                        "openSessionCount": rng.randrange(1_000),
                    },
                )
            )
    rng.shuffle(beats)

    responses = await asyncio.gather(
        *(
            client.post(
                f"/v1/workers/{worker.id}/activity-heartbeat",
                json=body,
                headers={"Authorization": f"Bearer {worker.token}"},
            )
            for worker, body in beats
        )
    )

    assert [r.status_code for r in responses] == [200] * len(beats)
    for (worker, _), r in zip(beats, responses, strict=True):
        assert r.json()["workerId"] == worker.id
    for worker in workers:
        sent = [body for w, body in beats if w is worker]
        newest = max(sent, key=lambda body: body["sentAt"])
        active = [body["lastActivityAt"] for body in sent if body["isActiveRecently"]]
        raw = await redis.hgetall(keys.worker_key(worker.id, settings.shards))
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        assert format_ms(int(fields[keys.F_HEARTBEAT])) == newest["sentAt"]
        assert fields[keys.F_OPEN_SESSIONS] == str(newest["openSessionCount"])
        assert fields[keys.F_ACTIVE_RECENTLY] == ("1" if newest["isActiveRecently"] else "0")
        if active:
            assert format_ms(int(fields[keys.F_ACTIVE])) == max(active)
        else:
            assert keys.F_ACTIVE not in fields
    text = (await client.get("/metrics")).text
    assert sample(text, "hb_group_commit_batch_size_sum") == len(beats)
    assert sample(text, "hb_group_commit_batch_size_count") < len(beats)


async def test_concurrent_beats_share_round_trips_as_the_metrics_show(client, redis, settings):
    workers = [await register(redis, settings) for _ in range(20)]
    responses = await asyncio.gather(
        *(
            client.post(
                f"/v1/workers/{worker.id}/activity-heartbeat",
                json={"isActiveRecently": True},
                headers={"Authorization": f"Bearer {worker.token}"},
            )
            for worker in workers
        )
    )
    assert {r.status_code for r in responses} == {200}
    text = (await client.get("/metrics")).text
    assert sample(text, "hb_group_commit_batch_size_sum") == len(workers)
    assert sample(text, "hb_group_commit_batch_size_count") < len(workers)


async def test_a_failing_beat_does_not_fail_its_batch(client, redis, settings):
    """Unknown, revoked and valid beats in one round trip each get their own answer."""
    good, revoked = await register(redis, settings), await register(redis, settings)
    await registry.register_worker(redis, settings.shards, revoked.id, revoked.org_id, 2)
    gone = await register(redis, settings)
    await registry.unregister_worker(redis, settings.shards, gone.id)
    responses = await asyncio.gather(
        *(
            client.post(
                f"/v1/workers/{w.id}/activity-heartbeat",
                json={"isActiveRecently": True},
                headers={"Authorization": f"Bearer {w.token}"},
            )
            for w in (good, revoked, gone, good)
        )
    )
    assert [r.status_code for r in responses] == [200, 401, 404, 200]


async def test_den_and_kubiya_beats_in_one_batch_are_each_stored(app, client, redis, settings):
    """The two contracts carry different argument counts in the same script call."""
    workers = [await register(redis, settings) for _ in range(6)]
    sent = now_ms() - 60_000

    def beat(n: int, worker) -> object:
        headers = {"Authorization": f"Bearer {worker.token}"}
        if n % 2:
            body = {"worker_id": worker.id, "environment_name": f"env-{n}", "status": "busy",
                    "tasks_processed": n, "current_task_id": f"task-{n}"}  # fmt: skip
            return client.post("/api/v1/workers/heartbeat", json=body, headers=headers)
        body = {"isActiveRecently": True, "sentAt": format_ms(sent + n), "openSessionCount": n}
        return client.post(f"/v1/workers/{worker.id}/activity-heartbeat", json=body,
                           headers=headers)  # fmt: skip

    responses = await asyncio.gather(*(beat(n, w) for n, w in enumerate(workers)))
    assert [r.status_code for r in responses] == [200, 204] * 3
    text = (await client.get("/metrics")).text
    assert sample(text, "hb_group_commit_batch_size_count") < len(workers)  # they shared calls

    for n, worker in enumerate(workers):
        stored = await redis.hgetall(keys.worker_key(worker.id, settings.shards))
        if n % 2:
            assert stored[b"ke"] == f"env-{n}".encode()
            assert stored[b"kc"] == f"task-{n}".encode()
            assert stored[b"kt"] == str(n).encode()
        else:
            assert stored[b"hb"] == str(sent + n).encode()
            assert stored[b"osc"] == str(n).encode()
            assert b"ks" not in stored


async def test_a_burst_larger_than_the_cap_is_split_into_calls_and_every_beat_answered(
    redis, settings
):
    from ingest.group_commit import GroupCommitter
    from ingest.state import IngestMetrics
    from shared.contract.record import DenBeat
    from shared.redis.pipe import RedisPipe

    workers = [await register(redis, settings) for _ in range(10)]
    pipe = RedisPipe(settings.redis_url, settings.redis_timeout)
    committer = GroupCommitter(
        redis, pipe, shards=settings.shards, persist_interval=60, max_per_call=4,
        metrics=IngestMetrics(),
    )  # fmt: skip
    await redis.execute_command("CONFIG", "RESETSTAT")
    now = now_ms()
    try:
        # Submitted in one step of the event loop: one batch of ten.
        futures = [
            committer.submit(DenBeat(w.id, w.version, now, None, False, None, None))
            for w in workers
        ]
        results = await asyncio.gather(*futures)
    finally:
        pipe.close()

    assert [r.code for r in results] == [200] * 10
    assert [int(r.heartbeat_ms) for r in results] == [now] * 10
    stats = await redis.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 3  # 4 + 4 + 2
    for worker in workers:
        stored = await redis.hget(keys.worker_key(worker.id, settings.shards), keys.F_HEARTBEAT)
        assert stored == str(now).encode()


async def test_beats_queued_behind_a_stalled_redis_are_answered_with_the_failed_write(
    redis, settings, tmp_path
):
    """With both writes in flight stuck on a Redis that stopped answering, a beat queued behind
    them fails when they do, instead of waiting out its own timeout on the same Redis."""
    import os
    import signal

    from hb.embedded import EmbeddedRedis
    from ingest.group_commit import GroupCommitter
    from ingest.state import IngestMetrics
    from shared.contract.record import DenBeat
    from shared.redis.connect import REDIS_DOWN
    from shared.redis.pipe import RedisPipe

    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    assert server.proc is not None
    pipe = RedisPipe(server.url, timeout=0.5)
    committer = GroupCommitter(
        redis, pipe, shards=settings.shards, persist_interval=60, max_per_call=256,
        metrics=IngestMetrics(),
    )  # fmt: skip
    writes = 0
    real = committer._call_many

    async def counted(*args):
        nonlocal writes
        writes += 1
        return await real(*args)

    committer._call_many = counted  # type: ignore[method-assign]
    beat = DenBeat(typeid.new_id(typeid.WORKER), 1, now_ms(), None, False, None, None)
    try:
        await pipe.call_many(b"*1\r\n$4\r\nPING\r\n", 1)  # connected before the stall
        os.kill(server.proc.pid, signal.SIGSTOP)
        first = committer.submit(beat)
        await asyncio.sleep(0)  # the first write starts
        second = committer.submit(beat)
        await asyncio.sleep(0)  # the second write starts: both slots are busy
        queued = committer.submit(beat)
        outcomes = await asyncio.gather(first, second, queued, return_exceptions=True)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        pipe.close()
        server.stop()

    assert all(isinstance(o, REDIS_DOWN) for o in outcomes), outcomes
    assert writes == 2  # the queued beat never waited on a write of its own


async def test_a_call_sent_again_after_its_reply_was_lost_appends_log_lines_once(redis, settings):
    """Redis ran the call, the connection dropped before its reply: the committer sends the
    call again (the script is idempotent), and a full beat's log lines are still kept once."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from ingest.group_commit import GroupCommitter
    from ingest.state import IngestMetrics
    from shared.contract.record import WorkerBeat
    from shared.redis.pipe import RedisPipe

    class LosesTheFirstReply(RedisPipe):
        calls = 0

        async def call_many(self, packed: bytes, commands: int) -> list[object]:
            replies = await super().call_many(packed, commands)
            self.calls += 1
            if self.calls == 1:
                raise RedisConnectionError("Connection closed by server.")
            return replies

    worker = await register(redis, settings)
    pipe = LosesTheFirstReply(settings.redis_url, timeout=5)
    committer = GroupCommitter(
        redis, pipe, shards=settings.shards, persist_interval=60, max_per_call=256,
        metrics=IngestMetrics(),
    )  # fmt: skip
    beat = WorkerBeat(
        worker.id, worker.version, None, now_ms(), "idle", 1, None, "{}", None, ["one", "two"],
        logs_id="lines-1",
    )  # fmt: skip
    try:
        result = await committer.submit(beat)
    finally:
        pipe.close()

    assert result.code == 200
    assert pipe.calls >= 2  # the call went twice
    logs = await redis.lrange(keys.logs_key(worker.id, settings.shards), 0, -1)
    assert logs == [b"one", b"two"]
    stored = await redis.hget(keys.worker_key(worker.id, settings.shards), keys.F_LOG_BYTES)
    assert stored == b"6"
