"""Group commit: beats that arrive in the same event-loop tick share one Redis round trip.

Each request awaits its own future, resolved only after Redis acknowledged the script that
carried its beat, so a 2xx always means the beat is in Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import NamedTuple, Protocol

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from shared import hotstore, resp
from shared.metrics import Histogram
from shared.redis_conn import LuaScript, refusal_or_self
from shared.redis_pipe import RedisPipe
from shared.timefmt import now_ms

RECORD = LuaScript(hotstore.RECORD_HEARTBEATS)


class _Metrics(Protocol):
    batch_size: Histogram
    redis_latency: Histogram


class Beat(NamedTuple):
    shard: int
    key: str  # the worker's hash
    args: list[str]  # this beat's RECORD_HEARTBEATS arguments


class BeatResult(NamedTuple):
    """The script's answer for one beat, as Redis sent it (ASCII digits; b"" = none)."""

    code: int
    heartbeat_ms: bytes
    active_ms: bytes
    active_recently: bytes
    open_sessions: bytes


# Writes under way at once. Beats arriving meanwhile gather into the next batch: under load,
# fewer and fuller script calls for at most one more round trip of latency.
MAX_IN_FLIGHT = 2


class GroupCommitter:
    """Writes through `pipe` on a single Redis, through redis-py's cluster pipeline otherwise."""

    def __init__(
        self, redis: Redis, pipe: RedisPipe | None, persist_interval: float, metrics: _Metrics
    ) -> None:
        self._redis = redis
        self._pipe = pipe
        self._persist_ms = str(int(persist_interval * 1000))
        self._pending: list[tuple[Beat, asyncio.Future[BeatResult]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics = metrics

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

    async def _write(self, batch: list[tuple[Beat, asyncio.Future[BeatResult]]]) -> None:
        if self._pipe is None:  # a cluster: one call per shard, so each touches one slot
            by_shard: dict[int, list[tuple[Beat, asyncio.Future[BeatResult]]]] = defaultdict(list)
            for item in batch:
                by_shard[item[0].shard].append(item)
            groups = list(by_shard.values())
        else:  # one call for the whole batch
            groups = [batch]
        calls = [self._script_call(items) for items in groups]
        started = time.perf_counter()
        try:
            replies = await self._run(calls)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self._metrics.redis_latency.observe(time.perf_counter() - started)
        self._metrics.batch_size.observe(len(batch))
        for items, reply in zip(groups, replies, strict=True):
            if isinstance(reply, Exception):
                reply = refusal_or_self(reply)
                for _, future in items:
                    if not future.done():
                        future.set_exception(reply)
                continue
            for n, (_, future) in enumerate(items):
                if future.done():  # the request was cancelled (client went away)
                    continue
                code, hb, act, iar, osc = reply[n * 5 : n * 5 + 5]  # type: ignore[index]
                future.set_result(BeatResult(int(code), hb, act, iar, osc))

    def _script_call(
        self, items: list[tuple[Beat, asyncio.Future[BeatResult]]]
    ) -> tuple[list[str], list[str]]:
        keys: list[str] = []
        args = [str(now_ms()), self._persist_ms]
        for beat, _ in items:
            keys += (beat.key, hotstore.dirty_key(beat.shard))
            args += beat.args
        return keys, args

    async def _run(self, calls: list[tuple[list[str], list[str]]]) -> list[object]:
        if self._pipe is None:
            return await self._run_pipeline(calls)
        [(keys, args)] = calls  # on a single Redis, one call carries the whole batch
        reply = await self._call(self._pipe, resp.evalsha(RECORD.sha, keys, args))
        if isinstance(reply, NoScriptError):  # Redis restarted or was flushed: load, then replay
            await RECORD.load(self._redis)
            reply = await self._call(self._pipe, resp.evalsha(RECORD.sha, keys, args))
        return [reply]

    @staticmethod
    async def _call(pipe: RedisPipe, packed: bytes) -> object:
        try:
            return await pipe.call(packed)
        except RedisConnectionError:  # dropped under way (Redis restarted?): once more, anew;
            return await pipe.call(packed)  # the script is idempotent, so a replay is harmless

    async def _run_pipeline(self, calls: list[tuple[list[str], list[str]]]) -> list[object]:
        """On a cluster, redis-py routes each script call to the node of its shard."""
        pipe = self._redis.pipeline(transaction=False)
        for keys, args in calls:
            RECORD.queue(pipe, keys, args)
        replies: list[object] = await pipe.execute(raise_on_error=False)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:  # Redis restarted or was flushed: load once, replay only those calls
            await RECORD.load(self._redis)
            pipe = self._redis.pipeline(transaction=False)
            for i in missing:
                RECORD.queue(pipe, *calls[i])
            for i, reply in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        return replies
