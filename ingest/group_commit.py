"""Group commit: beats that arrive in the same event-loop tick share one Redis round trip.

Each request awaits its own future, resolved only after Redis acknowledged the script call that
carried its beat, so a 2xx always means the beat is in Redis. A batch is cut into calls of at
most `max_per_call` beats (a burst must not become one script that blocks Redis for long); on a
single Redis they still leave in one write. On a cluster a call carries the beats of every shard
its node serves (as one Redis's call does), a node's calls leave in one write to it, and its
beats are answered when it replies; a beat whose slot the node no longer serves (moved, or
moving) goes again on a call of its own shard, which follows MOVED (and answers 503 to ASK: see
`shared.redis.cluster_pipes`).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

from prometheus_client import Histogram
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError, TryAgainError

from shared.contract import keys
from shared.contract.record import (
    ELSEWHERE,
    RECORD_HEARTBEATS,
    Beat,
    BeatResult,
    node_call,
    parse_results,
    record_call,
)
from shared.contract.times import now_ms
from shared.redis import resp
from shared.redis.cluster_pipes import Address, ClusterPipes
from shared.redis.connect import refusal_or_self
from shared.redis.pipe import RedisPipe


class _Metrics(Protocol):
    batch_size: Histogram
    redis_latency: Histogram


# Writes under way at once. Beats arriving meanwhile gather into the next batch: under load,
# fewer and fuller script calls for at most one more round trip of latency.
MAX_IN_FLIGHT = 2

Pending = tuple[Beat, "asyncio.Future[BeatResult]"]


class GroupCommitter:
    """Writes through `pipe`: one connection to a single Redis, or one per cluster primary."""

    def __init__(
        self,
        redis: Redis,
        pipe: RedisPipe | ClusterPipes,
        *,
        shards: int,
        persist_interval: float,
        max_per_call: int,
        metrics: _Metrics,
    ) -> None:
        self._redis = redis
        self._pipe = pipe
        self._shards = shards
        self._persist_ms = int(persist_interval * 1000)
        self._max_per_call = max_per_call
        self._pending: list[Pending] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics = metrics
        # On a cluster, each shard's slot (its keys share the shard's hash tag).
        self._shard_slots = [key_slot(keys.shard_tag(s).encode()) for s in range(shards)]

    def submit(self, beat: Beat) -> asyncio.Future[BeatResult]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[BeatResult] = loop.create_future()
        self._pending.append((beat, future))
        if not self._scheduled and len(self._tasks) < MAX_IN_FLIGHT:
            self._scheduled = True
            loop.call_soon(self._start_write)
        return future

    def _start_write(self) -> None:
        batch, self._pending, self._scheduled = self._pending, [], False
        if not batch:  # answered meanwhile (see `_write`)
            return
        task = asyncio.get_running_loop().create_task(self._write(batch))
        self._tasks.add(task)
        task.add_done_callback(self._write_done)

    def _write_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._pending and not self._scheduled:
            self._start_write()

    async def drain(self) -> None:
        """Wait for writes under way (at shutdown)."""
        while self._tasks or self._pending:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.sleep(0)

    def _cut(self, groups: Sequence[list[Pending]]) -> list[list[Pending]]:
        """Each group cut into script calls of at most `max_per_call` beats."""
        cap = self._max_per_call
        return [group[i : i + cap] for group in groups for i in range(0, len(group), cap)]

    def _pack(self, calls: list[list[Pending]]) -> list[tuple[list[str], list[str]]]:
        now = now_ms()
        return [
            record_call([beat for beat, _ in items], self._shards, now, self._persist_ms)
            for items in calls
        ]

    async def _write(self, batch: list[Pending]) -> None:
        started = time.perf_counter()
        try:
            if isinstance(self._pipe, ClusterPipes):
                await self._write_to_cluster(self._pipe, batch)
            else:
                calls = self._cut([batch])
                self._answer(calls, await self._run(self._pack(calls)))
        except Exception as exc:
            # Redis failed this write (down, stalled past the timeout). The beats queued behind
            # it would meet the same Redis and wait out another timeout: answer them now too.
            waiting, self._pending = self._pending, []
            for _, future in (*batch, *waiting):
                if not future.done():
                    future.set_exception(exc)
            return
        self._metrics.redis_latency.observe(time.perf_counter() - started)
        self._metrics.batch_size.observe(len(batch))

    @staticmethod
    def _answer(calls: list[list[Pending]], replies: Sequence[Any]) -> list[Pending]:
        """Hand each call's beats their results, or its failure; return the beats answered
        ELSEWHERE (not stored: the node asked does not serve them), still unanswered."""
        elsewhere: list[Pending] = []
        for items, reply in zip(calls, replies, strict=True):
            if isinstance(reply, Exception):
                reply = refusal_or_self(reply)
                for _, future in items:
                    if not future.done():
                        future.set_exception(reply)
                continue
            for item, result in zip(items, parse_results(reply, len(items)), strict=True):
                if result.code == ELSEWHERE:
                    elsewhere.append(item)
                elif not item[1].done():  # else the request was cancelled (client went away)
                    item[1].set_result(result)
        return elsewhere

    async def _write_to_cluster(self, pipes: ClusterPipes, batch: list[Pending]) -> None:
        """Per node, calls carrying the beats of all the shards it serves, answered as soon as
        that node replies (a slow node holds up only its own beats). The beats of a slot no node
        is known for go on calls of one shard each."""
        by_node: dict[Address, list[Pending]] = defaultdict(list)
        rest: list[Pending] = []
        for item in batch:
            slot = self._shard_slots[keys.shard_of(item[0].worker_id, self._shards)]
            node = pipes.node_of_slot(slot)
            if node is None:  # the table is not read yet, or the slot has no node
                rest.append(item)
            else:
                by_node[node].append(item)
        writes = [self._write_to_node(pipes, node, items) for node, items in by_node.items()]
        if rest:
            writes.append(self._write_by_shard(pipes, rest))
        await asyncio.gather(*writes)

    async def _write_to_node(
        self, pipes: ClusterPipes, node: Address, items: list[Pending]
    ) -> None:
        """`items` on calls to `node`; those it no longer serves again on calls of one shard."""
        calls = self._cut([items])
        now = now_ms()
        args = [node_call([b for b, _ in c], self._shards, now, self._persist_ms) for c in calls]
        replies = await pipes.run_on_node(RECORD_HEARTBEATS, node, args)
        rest: list[Pending] = []
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, ResponseError) and not isinstance(reply, NoScriptError):
                # The script stopped at a beat's key the node does not serve, after its first (a
                # slot whose keys are being moved in several rounds): the call's beats go again,
                # on their shards' calls, which name their keys.
                rest += call
            else:
                rest += self._answer([call], [reply])
        if rest:
            await self._write_by_shard(pipes, rest)

    async def _write_by_shard(self, pipes: ClusterPipes, items: list[Pending]) -> None:
        """Calls of one shard (one slot) each, which follow MOVED (an ASK fails its call)."""
        by_shard: dict[int, list[Pending]] = defaultdict(list)
        for item in items:
            by_shard[keys.shard_of(item[0].worker_id, self._shards)].append(item)
        calls = self._cut(list(by_shard.values()))
        replies = await pipes.run_script(RECORD_HEARTBEATS, self._pack(calls))
        for _, future in self._answer(calls, replies):
            if not future.done():  # declared keys: the call's slot is never elsewhere
                future.set_exception(TryAgainError("The beat's slot kept moving."))

    async def _run(self, calls: list[tuple[list[str], list[str]]]) -> list[Any]:
        assert isinstance(self._pipe, RedisPipe)
        replies = await self._call_many(self._pipe, calls)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:  # Redis restarted or was flushed: load, then replay only those calls
            await RECORD_HEARTBEATS.load(self._redis)
            again = await self._call_many(self._pipe, [calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    @staticmethod
    async def _call_many(pipe: RedisPipe, calls: Sequence[tuple[list[str], list[str]]]) -> Any:
        sha = RECORD_HEARTBEATS.sha
        packed = b"".join([resp.evalsha(sha, call_keys, args) for call_keys, args in calls])
        try:
            return await pipe.call_many(packed, len(calls))
        except RedisConnectionError:  # dropped under way (Redis restarted?): once more, anew;
            return await pipe.call_many(packed, len(calls))  # the script is idempotent
