"""The heartbeat client against real `hb ingest` processes on real Redis servers.

The unit tests script ingest's answers; these check that the answers ingest really gives are
the ones the client's manners were written for: a Redis outage is a 503 with Retry-After that
the client waits out, a rotated token or a deleted worker stops it for good, a fleet started
together spreads out, and a Kubiya beat lands in the worker's hash.

Every wait is for a condition the hooks report, with a deadline only as a safety net. Nothing
asserts that anything was fast: the one bound that involves elapsed time (requests in an
outage, at most one per Retry-After) only gets looser on a slow machine.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as sync_redis
from heartbeat_client import DenState, Heartbeater, HeartbeatRejected, KubiyaState
from redis.asyncio import Redis

from hb.embedded import EmbeddedRedis
from shared.contract import keys, registry
from shared.contract.times import now_ms
from shared.contract.tokens import issue_worker_token
from shared.settings import Settings
from tests.conftest import TOKEN_KEYS, make_settings
from tests.processes import running_ingest

from .real_ingest import BeatLog, Worker, register_fleet, register_worker

SAFETY = 10.0  # the deadline of a wait that normally ends within a beat or two
OUTAGE_SAFETY = 20.0  # a few backed-off retries, each at least Retry-After long
INTERVAL = 0.2
RETRY_AFTER = 1  # seconds; what ingest is told to put in its 503s' Retry-After
# The suite's shard count (its `settings` fixture): ingest must find workers where tests put them.
SHARDS = make_settings("redis://127.0.0.1:1/0").shards
ACCEPTED = {"den": 200, "kubiya": 204}


@pytest.fixture(scope="module")
def ingest_url(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ingest process for the tests that leave Redis alone (the suite's Redis, flushed
    before each test by the `redis` fixture)."""
    mark_registry_synced(redis_server_url)
    with running_ingest(redis_server_url, SHARDS, tmp_path_factory.mktemp("ingest")) as url:
        yield url


def mark_registry_synced(url: str) -> None:
    """What the flusher's reconcile leaves behind; without it ingest answers 503 for unknowns."""
    client = sync_redis.Redis.from_url(url)
    client.mset({keys.synced_key(s): "1" for s in range(SHARDS)} | {keys.REGISTRY_SYNCED: "1"})
    client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, without persistence, that it may stop and start again."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    mark_registry_synced(server.url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ingest_on_own_redis(own_redis: EmbeddedRedis, tmp_path: Path) -> Iterator[str]:
    with running_ingest(
        own_redis.url, SHARDS, tmp_path / "ingest", HB_RETRY_AFTER=str(RETRY_AFTER)
    ) as url:
        yield url


def heartbeater(
    url: str, worker: Worker, log: BeatLog, route: str = "den", **options
) -> Heartbeater:
    return Heartbeater(
        url,
        worker.id,
        worker.token,
        interval=INTERVAL,
        route=route,  # type: ignore[arg-type]
        environment_name="prod" if route == "kubiya" else None,
        rng=random.Random(7),
        on_beat=log.on_beat,
        on_failure=log.on_failure,
        **options,
    )


async def finish(hb: Heartbeater, run: asyncio.Task[None]) -> None:
    """Stop a run that a failed assertion may have left going, and wait for its end."""
    hb.stop()
    if not run.done():
        try:
            await asyncio.wait_for(asyncio.shield(run), SAFETY)
        except TimeoutError:
            run.cancel()
    await asyncio.gather(run, return_exceptions=True)


class BeatGate:
    """A `state` callback that can hold the next beat before it is sent.

    While the gate is closed, a beat waits in the callback (and says so through `parked`), so
    the test knows that no request is on its way to ingest.
    """

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self.parked = asyncio.Event()

    def close(self) -> None:
        self._open.clear()
        self.parked.clear()

    def open(self) -> None:
        self._open.set()

    async def __call__(self) -> DenState:
        if not self._open.is_set():
            self.parked.set()
            await self._open.wait()
        return DenState(is_active_recently=True, open_session_count=1)


# -- a Redis outage ---------------------------------------------------------------------------


async def test_in_a_redis_outage_the_client_waits_out_each_503_and_resumes_when_redis_returns(
    own_redis: EmbeddedRedis, ingest_on_own_redis: str
) -> None:
    url = own_redis.url
    async with Redis.from_url(url) as redis:
        worker = await register_worker(redis, SHARDS)
    log, gate = BeatLog(), BeatGate()
    hb = heartbeater(ingest_on_own_redis, worker, log, state=gate, max_backoff=2.0)
    async with hb:
        await log.wait_until(lambda: log.statuses.count(200) >= 2, "two accepted beats", SAFETY)

        await asyncio.to_thread(own_redis.stop)
        outage_began = time.monotonic()
        before = len(log.failures)
        await log.wait_until(
            lambda: len(log.failures) - before >= 3,
            "three failed beats in the outage",
            OUTAGE_SAFETY,
        )
        # Ingest's answer in the outage, seen once from beside the client.
        async with httpx.AsyncClient(base_url=ingest_on_own_redis) as probe:
            answer = await probe.post(
                f"/v1/workers/{worker.id}/activity-heartbeat",
                json={"isActiveRecently": False},
                headers={"Authorization": f"Bearer {worker.token}"},
            )
        # Redis comes back empty, as after a restart without persistence. The next beat is held
        # until the worker is registered again, as the flusher's reconcile would do.
        gate.close()
        await asyncio.wait_for(gate.parked.wait(), OUTAGE_SAFETY)
        outage_seconds = time.monotonic() - outage_began
        outage = log.failures[before:]

        await asyncio.to_thread(own_redis.start)
        async with Redis.from_url(url) as redis:
            await registry.register_worker(redis, SHARDS, worker.id, worker.org_id, 1)
            await registry.mark_synced(redis, SHARDS)
        resumed_from = len(log.statuses)
        gate.open()
        await log.wait_until(
            lambda: 200 in log.statuses[resumed_from:],
            "an accepted beat after Redis returned",
            SAFETY,
        )
        assert hb.consecutive_failures == 0

    assert answer.status_code == 503
    assert answer.headers["retry-after"] == str(RETRY_AFTER)
    assert [failure for failure, _ in outage] == [503] * len(outage)
    # Each retry waited at least what Retry-After asked for, so the outage cost at most one
    # request per Retry-After; at its interval the client would have sent five a second.
    delays = [delay for _, delay in outage]
    assert all(delay is not None and delay >= RETRY_AFTER for delay in delays), delays
    assert len(outage) <= 1 + outage_seconds / RETRY_AFTER
    assert hb.error is None
    assert hb.beats_sent >= 3


# -- refusals that retrying cannot fix --------------------------------------------------------


@pytest.mark.parametrize("route", ["den", "kubiya"])
async def test_a_client_whose_token_was_rotated_stops_at_the_first_401_saying_to_issue_a_new_one(
    ingest_url: str, redis: Redis, settings: Settings, route: str
) -> None:
    worker = await register_worker(redis, settings.shards)
    log = BeatLog()
    stops: list[BaseException | None] = []
    hb = heartbeater(ingest_url, worker, log, route, on_stop=stops.append)
    run = asyncio.create_task(hb.run())
    try:
        await log.wait_until(lambda: ACCEPTED[route] in log.statuses, "an accepted beat", SAFETY)
        # What rotating the token does to the registry: version 2 is the only one accepted.
        await registry.register_worker(redis, settings.shards, worker.id, worker.org_id, 2)
        with pytest.raises(HeartbeatRejected) as caught:
            await asyncio.wait_for(asyncio.shield(run), SAFETY)
    finally:
        await finish(hb, run)

    rejection = caught.value
    assert rejection.status_code == 401
    assert "token is invalid or was revoked; issue a new one" in str(rejection)
    assert worker.token not in str(rejection)
    assert worker.token not in repr(hb)
    assert log.statuses.count(401) == 1
    assert log.statuses[-1] == 401
    assert log.failures[-1] == (401, None)
    assert hb.error is rejection
    assert stops == [rejection]
    assert not hb.running

    # The new token is accepted.
    token = issue_worker_token(TOKEN_KEYS, "k1", worker.id, 2)
    renewed = Worker(worker.id, worker.org_id, token)
    log = BeatLog()
    async with heartbeater(ingest_url, renewed, log, route):
        await log.wait_until(lambda: ACCEPTED[route] in log.statuses, "an accepted beat", SAFETY)
    assert 401 not in log.statuses


@pytest.mark.parametrize("route", ["den", "kubiya"])
async def test_a_client_whose_worker_was_deleted_stops_at_the_first_404(
    ingest_url: str, redis: Redis, settings: Settings, route: str
) -> None:
    worker = await register_worker(redis, settings.shards)
    log = BeatLog()
    hb = heartbeater(ingest_url, worker, log, route)
    run = asyncio.create_task(hb.run())
    try:
        await log.wait_until(lambda: ACCEPTED[route] in log.statuses, "an accepted beat", SAFETY)
        await registry.unregister_worker(redis, settings.shards, worker.id)
        with pytest.raises(HeartbeatRejected) as caught:
            await asyncio.wait_for(asyncio.shield(run), SAFETY)
    finally:
        await finish(hb, run)

    rejection = caught.value
    assert rejection.status_code == 404
    assert "worker is unknown or was deleted" in str(rejection)
    assert "not found" in rejection.body.lower()
    assert log.statuses.count(404) == 1
    assert log.statuses[-1] == 404
    assert hb.error is rejection


# -- a fleet started together -----------------------------------------------------------------

FLEET_SIZE = 1000
FLEET_INTERVAL = 5.0
TENTHS = 10
FLEET_SAFETY = 30.0


class FleetRecorder:
    """Each fleet member's first wait (the delay its schedule chose before its first beat) and
    what its first beat was answered.

    The spread is judged on the delays the clients chose, which a busy machine cannot move
    (a stalled event loop would start timers late, all together), while the beats themselves
    go to a real ingest.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.first_wait: dict[str, float] = {}
        self.first_status: dict[str, int] = {}
        self.all_answered = asyncio.Event()

    def member(self, url: str, worker: Worker, seed: int, client: httpx.AsyncClient) -> Heartbeater:
        async def sleep(delay: float) -> None:
            self.first_wait.setdefault(worker.id, delay)
            await asyncio.sleep(delay)

        def on_beat(status: int, latency: float) -> None:
            self.first_status.setdefault(worker.id, status)
            if len(self.first_status) == self.size:
                self.all_answered.set()
            hb.stop()  # one beat each is all this test needs

        hb = Heartbeater(
            url,
            worker.id,
            worker.token,
            interval=FLEET_INTERVAL,
            client=client,
            rng=random.Random(seed),
            state=lambda: DenState(is_active_recently=False),
            on_beat=on_beat,
            sleep=sleep,
        )
        return hb

    def per_tenth(self) -> list[int]:
        """How many first beats were planned in each tenth of the interval."""
        counts = [0] * TENTHS
        for wait in self.first_wait.values():
            counts[min(int(wait / (FLEET_INTERVAL / TENTHS)), TENTHS - 1)] += 1
        return counts


async def test_a_thousand_clients_started_together_spread_their_first_beats_over_the_interval(
    ingest_url: str, redis: Redis, settings: Settings
) -> None:
    fleet = await register_fleet(redis, settings.shards, FLEET_SIZE)
    recorder = FleetRecorder(FLEET_SIZE)
    # One client for the whole fleet, opening a connection for each beat in flight, keeping a
    # few idle.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=32)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        members = [recorder.member(ingest_url, w, seed, client) for seed, w in enumerate(fleet)]
        runs = [asyncio.create_task(hb.run()) for hb in members]
        try:
            await asyncio.wait_for(recorder.all_answered.wait(), FLEET_INTERVAL + FLEET_SAFETY)
        finally:
            for hb in members:
                hb.stop()
            await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), SAFETY)

    assert set(recorder.first_status.values()) == {200}
    assert all(0 <= wait <= FLEET_INTERVAL for wait in recorder.first_wait.values())
    counts = recorder.per_tenth()
    assert sum(counts) == FLEET_SIZE
    share = FLEET_SIZE / TENTHS
    spread = f"first beats planned per tenth of the interval: {counts}"
    assert all(count >= share / 2 for count in counts), spread
    assert all(count <= share * 2 for count in counts), spread

    pipe = redis.pipeline(transaction=False)
    for worker in fleet:
        pipe.hget(keys.worker_key(worker.id, settings.shards), keys.F_HEARTBEAT)
    assert all(heartbeat is not None for heartbeat in await pipe.execute())


# -- Kubiya's route ---------------------------------------------------------------------------


async def test_a_kubiya_route_beat_is_answered_204_and_its_fields_land_in_the_worker_hash(
    ingest_url: str, redis: Redis, settings: Settings
) -> None:
    worker = await register_worker(redis, settings.shards)
    state = KubiyaState(
        status="busy",
        tasks_processed=7,
        current_task_id="task-42",
        worker_metadata={"host": "node-3", "slots": 4},
    )
    log = BeatLog()
    hb = heartbeater(ingest_url, worker, log, "kubiya", state=lambda: state)
    before = now_ms()
    async with hb:
        await log.wait_until(lambda: 204 in log.statuses, "an accepted beat", SAFETY)
    after = now_ms()

    assert log.statuses[0] == 204
    assert hb.error is None
    fields = await redis.hgetall(keys.worker_key(worker.id, settings.shards))
    assert fields[keys.F_STATUS.encode()] == b"busy"
    assert fields[keys.F_TASKS.encode()] == b"7"
    assert fields[keys.F_TASK_ID.encode()] == b"task-42"
    assert fields[keys.F_ENVIRONMENT.encode()] == b"prod"
    assert json.loads(fields[keys.F_METADATA.encode()]) == {"host": "node-3", "slots": 4}
    assert before <= int(fields[keys.F_HEARTBEAT.encode()]) <= after
    assert fields[keys.F_ORG.encode()] == worker.org_id.encode()
    assert fields[keys.F_TOKEN_VERSION.encode()] == b"1"


async def test_kubiyas_per_worker_route_stores_a_full_beats_logs_and_the_disconnect_at_the_stop(
    ingest_url: str, redis: Redis, settings: Settings
) -> None:
    worker = await register_worker(redis, settings.shards)
    log = BeatLog()
    hb = heartbeater(
        ingest_url, worker, log, "kubiya-worker",
        state=lambda: KubiyaState(status="busy", tasks_processed=2),
        system_info=lambda: {"hostname": "node-3", "cpu_count": 4},
        logs=lambda: ["task 1 done", "task 2 done"] if not log.statuses else [],
    )  # fmt: skip
    async with hb:
        await log.wait_until(lambda: len(log.statuses) >= 2, "two answered beats", SAFETY)

    assert log.statuses[:2] == [204, 204]
    assert hb.error is None
    hash_key = keys.worker_key(worker.id, settings.shards)
    fields = {k.decode(): v.decode() for k, v in (await redis.hgetall(hash_key)).items()}
    assert fields[keys.F_STATUS] == "busy"
    assert json.loads(fields[keys.F_SYSTEM_INFO]) == {"hostname": "node-3", "cpu_count": 4}
    # The first beat was full, the next light: the lines are there once.
    lines = await redis.lrange(keys.logs_key(worker.id, settings.shards), 0, -1)
    assert lines == [b"task 1 done", b"task 2 done"]
    # The stop said so: offline at once, for the reason given.
    assert int(fields[keys.F_DISCONNECTED]) >= int(fields[keys.F_HEARTBEAT])
    assert fields[keys.F_DISCONNECT_REASON] == "shutdown"
