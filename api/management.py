"""Write operations on organizations, people, credentials and workers.

Postgres is written first; the Redis registry follows. When Redis is unreachable the write still
stands in Postgres and the flusher's reconcile brings the registry back in step later.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import asyncpg
from redis.asyncio import Redis

from shared.contract import registry, typeid
from shared.contract.tokens import (
    hash_secret,
    issue_worker_token,
    new_api_key,
    new_session_token,
)
from shared.redis.connect import REDIS_DOWN
from shared.settings import Settings

log = logging.getLogger("hb.api.management")

# The Den columns a caller may set when creating a worker, by their keyword names.
WORKER_FIELDS = (
    "description", "destination", "status", "image_version", "workspace_path", "sandbox_backend",
)  # fmt: skip


# Every write below reports `registry_synced`: False when Redis was down, so the caller can say
# that the flusher's reconcile will bring the registry in step.


class NewApiKey(NamedTuple):
    key_id: str
    secret: str  # shown once; only its hash is kept
    registry_synced: bool


class NewWorker(NamedTuple):
    worker_id: str
    heartbeat_token: str  # shown once
    registry_synced: bool


class RotatedToken(NamedTuple):
    heartbeat_token: str
    token_version: int
    registry_synced: bool


async def sync_registry(change: Awaitable[Any], what: str) -> bool:
    """Apply a registry change; False (and a warning) when Redis is down and reconcile must."""
    try:
        await change
    except REDIS_DOWN as exc:
        log.warning("Redis unreachable (%s); %s is saved in Postgres and the registry will be "
                    "repaired by the flusher's reconcile", exc, what)  # fmt: skip
        return False
    return True


async def create_organization(pool: asyncpg.Pool, name: str) -> str:
    org_id = typeid.new_id(typeid.ORG)
    await pool.execute("INSERT INTO organizations (id, name) VALUES ($1, $2)", org_id, name)
    return org_id


async def create_user(pool: asyncpg.Pool, email: str, name: str | None = None) -> str:
    user_id = typeid.new_id(typeid.USER)
    await pool.execute(
        "INSERT INTO users (id, email, name) VALUES ($1, $2, $3)", user_id, email, name
    )
    return user_id


async def add_membership(
    pool: asyncpg.Pool, org_id: str, user_id: str, role: str = "member"
) -> None:
    await pool.execute(
        "INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)"
        " ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role",
        org_id, user_id, role,
    )  # fmt: skip


class QuotaExceeded(Exception):
    """The organization already has as many workers (or API keys) as its quota allows."""


async def _insert_within_quota(
    pool: asyncpg.Pool, org_id: str, count_sql: str, quota: int, insert_sql: str, *args: Any
) -> Any:
    """Run `insert_sql` (returning a value) unless the org's count is at `quota`. The org's
    advisory lock makes the count and the insert one step, so racing creations can't overshoot."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", org_id)
        if await conn.fetchval(count_sql, org_id) >= quota:
            raise QuotaExceeded(f"the organization has reached its quota of {quota}")
        return await conn.fetchval(insert_sql, *args)


class NotAMember(ValueError):
    """A session was asked for a user who is not a member of the organization."""


async def create_session(pool: asyncpg.Pool, user_id: str, org_id: str, ttl: timedelta) -> str:
    """A session token for `user_id`, a member of `org_id`, valid for `ttl`; only its hash is
    stored."""
    token = new_session_token()
    status = await pool.execute(
        "INSERT INTO sessions (token_hash, user_id, org_id, expires_at)"
        " SELECT $1, $2, $3, $4 WHERE EXISTS"
        " (SELECT 1 FROM memberships WHERE org_id = $3 AND user_id = $2)",
        hash_secret(token), user_id, org_id, datetime.now(UTC) + ttl,
    )  # fmt: skip
    if status == "INSERT 0 0":
        raise NotAMember(f"user {user_id} is not a member of organization {org_id}")
    return token


async def revoke_session(pool: asyncpg.Pool, token_hash: str) -> bool:
    """End a session at once; False when there was no live one."""
    status = await pool.execute(
        "UPDATE sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL",
        token_hash,
    )
    return bool(status != "UPDATE 0")


async def create_api_key(
    pool: asyncpg.Pool,
    redis: Redis,
    org_id: str,
    name: str,
    created_by_user_id: str | None = None,
    quota: int | None = None,
) -> NewApiKey:
    """An org API key, registered for ingest's Kubiya route; QuotaExceeded when the org already
    has `quota` live keys."""
    key_id = typeid.new_id(typeid.API_KEY)
    secret = new_api_key()
    insert = (
        "INSERT INTO api_keys (id, org_id, name, key_hash, created_by_user_id)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id"
    )
    args = (key_id, org_id, name, hash_secret(secret), created_by_user_id)
    if quota is None:
        await pool.fetchval(insert, *args)
    else:
        live = "SELECT count(*) FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL"
        await _insert_within_quota(pool, org_id, live, quota, insert, *args)
    synced = await sync_registry(
        registry.register_api_key(redis, hash_secret(secret), org_id), f"API key {key_id}"
    )
    return NewApiKey(key_id, secret, synced)


async def revoke_api_key(pool: asyncpg.Pool, redis: Redis, org_id: str, key_id: str) -> bool | None:
    """Revoke the key: None when the org has no such live key, else `registry_synced`."""
    key_hash: str | None = await pool.fetchval(
        "UPDATE api_keys SET revoked_at = now()"
        " WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL RETURNING key_hash",
        key_id, org_id,
    )  # fmt: skip
    if key_hash is None:
        return None
    return await sync_registry(registry.revoke_api_key(redis, key_hash), f"revocation of {key_id}")


async def create_worker(
    pool: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    org_id: str,
    name: str,
    created_by_user_id: str | None = None,
    **den_fields: Any,
) -> NewWorker:
    """A worker in `org_id`; ingest accepts its beats once the registry has it (right away
    unless Redis is down). QuotaExceeded when the org has HB_MAX_WORKERS_PER_ORG live ones."""
    unknown = set(den_fields) - set(WORKER_FIELDS)
    if unknown:
        raise TypeError(f"unknown worker fields: {', '.join(sorted(unknown))}")
    worker_id = typeid.new_id(typeid.WORKER)
    columns = ["id", "org_id", "name", "created_by_user_id"]
    values: list[Any] = [worker_id, org_id, name, created_by_user_id]
    for column, value in den_fields.items():
        if value is not None:
            columns.append(column)
            values.append(value)
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    version: int = await _insert_within_quota(
        pool, org_id,
        "SELECT count(*) FROM workers WHERE org_id = $1 AND deleted_at IS NULL",
        settings.max_workers_per_org,
        f"INSERT INTO workers ({', '.join(columns)}) VALUES ({placeholders})"
        " RETURNING token_version",
        *values,
    )  # fmt: skip
    synced = await sync_registry(
        registry.register_worker(redis, settings.shards, worker_id, org_id, version),
        f"worker {worker_id}",
    )
    return NewWorker(worker_id, heartbeat_token(settings, worker_id, version), synced)


def heartbeat_token(settings: Settings, worker_id: str, version: int) -> str:
    return issue_worker_token(settings.token_keys, settings.signing_kid, worker_id, version)


async def rotate_worker_token(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, org_id: str, worker_id: str
) -> RotatedToken | None:
    """A new heartbeat token, or None when the org has no such live worker; every older token
    is refused by ingest from then on."""
    version: int | None = await pool.fetchval(
        "UPDATE workers SET token_version = token_version + 1, updated_at = now()"
        " WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL RETURNING token_version",
        worker_id, org_id,
    )  # fmt: skip
    if version is None:
        return None
    synced = await sync_registry(
        registry.register_worker(redis, settings.shards, worker_id, org_id, version),
        f"token rotation of {worker_id}",
    )
    # A deletion committed after the UPDATE above may have removed the registry entry before
    # it was written again just now, which would bring the worker back until the next
    # reconcile. Its Postgres row says so: remove the entry again. (A deletion committed after
    # this read removes the entry itself, later than the write above.)
    if await pool.fetchval("SELECT deleted_at IS NOT NULL FROM workers WHERE id = $1", worker_id):
        await sync_registry(
            registry.unregister_worker(redis, settings.shards, worker_id),
            f"deletion of {worker_id}",
        )
        return None
    return RotatedToken(heartbeat_token(settings, worker_id, version), version, synced)


async def delete_worker(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, org_id: str, worker_id: str
) -> bool | None:
    """Soft-delete the worker (ingest answers 404 for it once the registry entry is gone):
    None when the org has no such live worker, else `registry_synced`."""
    deleted = await pool.fetchval(
        "UPDATE workers SET deleted_at = now(), updated_at = now()"
        " WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL RETURNING id",
        worker_id, org_id,
    )  # fmt: skip
    if deleted is None:
        return None
    return await sync_registry(
        registry.unregister_worker(redis, settings.shards, worker_id), f"deletion of {worker_id}"
    )
