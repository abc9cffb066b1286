"""What the API's routes share in one process: settings, the Postgres pool and Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
from redis.asyncio import Redis

from api.auth import Credential
from api.cursor import Cursor
from api.worker_queries import fetch_page, fetch_worker
from api.worker_view import LiveFields, read_live_fields, read_worker_live
from shared.redis.connect import REDIS_DOWN, connect_redis
from shared.redis.pipe import RedisPipe
from shared.settings import Settings
from shared.tracing import span
from shared.web.metrics import ServiceMetrics

log = logging.getLogger("hb.api")
T = TypeVar("T")

# A kept connection that Postgres closed: asyncpg detaches it from the pool or reports it gone.
LOST_CONNECTION = (
    asyncpg.InterfaceError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InternalClientError,
)
# Postgres connections the read routes keep; the pool has a few more for management.
READ_CONNECTIONS = 10
POSTGRES_CONNECTIONS = READ_CONNECTIONS + 4
# On a cluster, page reads in flight towards Redis at once (on a single Redis they share one
# pipelined connection); the pool keeps a few more for management writes.
READ_SLOTS = 32
REDIS_CONNECTIONS = READ_SLOTS + 8


async def _reset(conn: asyncpg.Connection) -> None:
    """The API keeps no session state (no LISTEN, locks or SET), so the pool's default reset
    statement would only add a round trip to every request; an open transaction still ends."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class ApiState:
    """Created with the app; `start` connects it when the lifespan begins."""

    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    pipe: RedisPipe | None  # the page reads' connection, on a single Redis

    def __init__(self) -> None:
        self.metrics = ServiceMetrics()
        self._redis_down = False
        # Under load every connection is busy (a read holds one until its task runs again), and
        # both pools let newcomers overtake their waiters: p99 of seconds at 64 connections.
        # The reads queue on these semaphores instead, served in arrival order.
        self._postgres_slots = asyncio.Semaphore(READ_CONNECTIONS)
        self._read_slots = asyncio.Semaphore(READ_SLOTS)
        # Connections the reads took from the pool and keep: asyncpg's release path (a shielded
        # task and a reset per query) cost ~45 us of CPU per statement.
        self._kept: list[asyncpg.Connection] = []
        # The share of an org's workers the last filtered page matched, by (credential,
        # filters): the caller's next page sizes its first batch of keys by it (fleet_list).
        self.filter_shares: dict[tuple[Any, Any], tuple[float, float]] = {}  # (share, until)

    async def start(self, settings: Settings) -> None:
        self.settings = settings
        # No connection at start: the API comes up (and answers 503) while Postgres is down.
        # Generic plans: with its credential CTE and LIMIT parameter, Postgres kept re-planning the
        # page's prepared statement on every call (~0.3 ms of its CPU a page) for the same plan.
        pool = await asyncpg.create_pool(
            settings.database_url, min_size=0, max_size=POSTGRES_CONNECTIONS,
            timeout=settings.postgres_timeout, command_timeout=settings.postgres_timeout,
            reset=_reset,
            server_settings={"plan_cache_mode": "force_generic_plan"},
        )  # fmt: skip
        assert pool is not None
        self.pool = pool
        self.redis = connect_redis(settings, max_connections=REDIS_CONNECTIONS, blocking=True)
        self.pipe = None
        if not settings.redis_cluster:
            self.pipe = RedisPipe(settings.redis_url, settings.redis_timeout)

    async def stop(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
        await self.redis.aclose()
        while self._kept:
            await self.pool.release(self._kept.pop())
        await self.pool.close()

    @property
    def reads_redis(self) -> Redis | RedisPipe:
        """Where the fleet index's reads go: the API's own pipelined connection on a single
        Redis, redis-py's client on a cluster."""
        return self.pipe if self.pipe is not None else self.redis

    @property
    def stale_bound(self) -> float:
        """How old durable heartbeat data can be: a beat is persisted within this many seconds."""
        return self.settings.persist_interval + self.settings.flush_interval

    async def page_rows(
        self, credential: Credential, limit: int, after: Cursor | None
    ) -> list[asyncpg.Record]:
        return await self.read(fetch_page, credential, limit, after)

    async def worker_row(self, credential: Credential, worker_id: str) -> asyncpg.Record | None:
        return await self.read(fetch_worker, credential, worker_id)

    async def read(self, fetch: Callable[..., Awaitable[T]], *args: Any) -> T:
        """One read statement on a kept connection (raises POSTGRES_DOWN)."""
        with span(fetch.__name__, store="postgres"):  # the wait for a connection included
            return await self._read(fetch, *args)

    async def _read(self, fetch: Callable[..., Awaitable[T]], *args: Any) -> T:
        async with self._postgres_slots:
            if self._kept:
                conn = self._kept.pop()
                try:
                    result = await fetch(conn, *args)
                except LOST_CONNECTION:
                    # Postgres ended it (a restart, an idle timeout) since the last read, so the
                    # pool's idle ones are suspect too: repeat the read on a new connection.
                    await self.pool.release(conn)
                    await self.pool.expire_connections()
                except BaseException:
                    await self.pool.release(conn)  # the pool resets it, or closes it if broken
                    raise
                else:
                    self._kept.append(conn)
                    return result
            conn = await self.pool.acquire()
            try:
                result = await fetch(conn, *args)
            except BaseException:
                await self.pool.release(conn)
                raise
            self._kept.append(conn)
            return result

    async def live_fields(self, worker_ids: Sequence[str]) -> list[LiveFields] | None:
        """Each worker's Redis fields, or None when Redis is down (the read degrades)."""
        return await self._live(read_live_fields, worker_ids, len(worker_ids))

    async def worker_live(self, worker_id: str) -> tuple[LiveFields, list[bytes]] | None:
        """One worker's Redis fields and recent log lines, or None when Redis is down."""
        return await self._live(read_worker_live, worker_id, 1)

    async def _live(self, read: Callable[..., Awaitable[T]], what: Any, workers: int) -> T | None:
        try:
            with span("HMGET", {"hb.workers": workers}, store="redis"):
                if self.pipe is not None:
                    fields = await read(self.pipe, self.settings.shards, what)
                else:
                    async with self._read_slots:
                        fields = await read(self.redis, self.settings.shards, what)
        except REDIS_DOWN as exc:
            if not self._redis_down:
                log.warning("Redis unreachable (%s); serving durable heartbeat data only", exc)
            self._redis_down = True
            return None
        if self._redis_down:
            log.warning("Redis reachable again; serving merged heartbeat data")
            self._redis_down = False
        return fields
