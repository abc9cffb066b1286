from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from api import management
from api.app import create_app
from shared.settings import Settings
from tests.conftest import asgi_client, make_settings

SESSION_TTL = timedelta(hours=1)


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    """The API needs both stores; the `ingest` fixture then shares these settings."""
    return make_settings(redis_url, database_url)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in asgi_client(create_app(settings)):
        yield client


@dataclass
class Tenant:
    org_id: str
    user_id: str
    session: str
    api_key: str
    api_key_id: str

    @property
    def as_user(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.session}"}

    @property
    def as_key(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}


async def make_tenant(pool: asyncpg.Pool, redis: Redis, name: str = "acme") -> Tenant:
    org_id = await management.create_organization(pool, name)
    user_id = await management.create_user(pool, f"{name}-owner@example.com", "Owner")
    await management.add_membership(pool, org_id, user_id, "owner")
    session = await management.create_session(pool, user_id, org_id, SESSION_TTL)
    key_id, key, _ = await management.create_api_key(pool, redis, org_id, "automation", user_id)
    return Tenant(org_id, user_id, session, key, key_id)


@pytest.fixture
async def tenant(pool: asyncpg.Pool, redis: Redis) -> Tenant:
    return await make_tenant(pool, redis, "acme")


@pytest.fixture
async def other_tenant(pool: asyncpg.Pool, redis: Redis) -> Tenant:
    return await make_tenant(pool, redis, "globex")
