"""Real servers for the suite: embedded Redis and PostgreSQL by default, or running ones when
HB_TEST_REDIS_URL / HB_TEST_DATABASE_URL are set (their data is then flushed by the tests)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
import redis as sync_redis
from redis.asyncio import Redis

from hb.embedded import EmbeddedPostgres, EmbeddedRedis, ensure_database
from shared.contract import keys, registry, typeid
from shared.contract.tokens import issue_worker_token
from shared.postgres.migrate import migrate
from shared.postgres.pool import create_pool
from shared.settings import Settings

SYNCED_SHARDS = 64
TOKEN_KEYS = {"k1": b"test-signing-key-0123456789", "k0": b"older-signing-key-0123456789"}


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("HB_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The test Redis, emptied before each test, its registry marked complete (as the flusher's
    reconcile leaves it) for any shard count a test uses."""
    client = sync_redis.Redis.from_url(redis_server_url)
    client.flushdb()
    client.mset({keys.synced_key(shard): "1" for shard in range(SYNCED_SHARDS)})
    client.set(keys.REGISTRY_SYNCED, "1")
    client.close()
    return redis_server_url


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("HB_TEST_DATABASE_URL")
    if url:
        yield url
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server.url()
    server.stop()


@pytest.fixture
async def database_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    name = f"hb_test_{secrets.token_hex(6)}"
    url = await ensure_database(pg_server_url, name)
    await migrate(url)
    yield url
    conn = await asyncpg.connect(pg_server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on the test's fresh database."""
    pool = await create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


def make_settings(redis_url: str, database_url: str = "", **overrides: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": redis_url,
        "token_keys": dict(TOKEN_KEYS),
        "shards": 8,
    }
    if database_url:
        values["database_url"] = database_url
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


class RegisteredWorker:
    def __init__(self, settings: Settings, worker_id: str, org_id: str, version: int = 1) -> None:
        self.id = worker_id
        self.org_id = org_id
        self.version = version
        self.token = issue_worker_token(settings.token_keys, "k1", worker_id, version)


async def register(
    redis: Redis, settings: Settings, org_id: str | None = None, version: int = 1
) -> RegisteredWorker:
    worker = RegisteredWorker(
        settings, typeid.new_id(typeid.WORKER), org_id or typeid.new_id(typeid.ORG), version
    )
    await registry.register_worker(redis, settings.shards, worker.id, worker.org_id, version)
    return worker


async def asgi_client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for a Starlette app, with its lifespan running."""
    from starlette.applications import Starlette

    assert isinstance(app, Starlette)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
async def ingest(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from ingest.app import create_app

    async for client in asgi_client(create_app(settings)):
        yield client
