"""The demo organization of `hb dev`: created once, reused on later runs while its rows exist.

Secrets are shown once by the API, so the seed keeps them in a file in the data directory; a run
checks each credential against Postgres and recreates only what is gone (a revoked key, a
deleted worker), then writes the registry entries again in case Redis lost them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from api import management
from shared.contract import registry
from shared.contract.tokens import hash_secret, issue_worker_token
from shared.settings import Settings

DEMO_EMAIL = "demo@example.com"


@dataclass
class DemoSeed:
    orgId: str
    userId: str
    sessionToken: str
    apiKeyId: str
    apiKey: str
    workerId: str
    heartbeatToken: str


def read_seed(path: Path) -> DemoSeed | None:
    try:
        return DemoSeed(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


async def _exists(pool: asyncpg.Pool, sql: str, *args: object) -> bool:
    return await pool.fetchval(sql, *args) is not None


async def ensure_demo(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, previous: DemoSeed | None
) -> DemoSeed:
    seed = previous
    if seed is None or not await _exists(
        pool, "SELECT 1 FROM organizations WHERE id = $1", seed.orgId
    ):
        org_id = await management.create_organization(pool, "Demo organization")
        seed = DemoSeed(org_id, "", "", "", "", "", "")

    if not await _exists(
        pool,
        "SELECT 1 FROM memberships WHERE user_id = $1 AND org_id = $2",
        seed.userId, seed.orgId,
    ):  # fmt: skip
        user_id = await pool.fetchval("SELECT id FROM users WHERE email = $1", DEMO_EMAIL)
        if user_id is None:
            user_id = await management.create_user(pool, DEMO_EMAIL, "Demo user")
        await management.add_membership(pool, seed.orgId, user_id, "owner")
        seed.userId, seed.sessionToken = user_id, ""

    if not await _exists(
        pool,
        "SELECT 1 FROM sessions WHERE token_hash = $1 AND user_id = $2 AND org_id = $3"
        " AND revoked_at IS NULL AND expires_at > now()",
        hash_secret(seed.sessionToken), seed.userId, seed.orgId,
    ):  # fmt: skip
        seed.sessionToken = await management.create_session(
            pool, seed.userId, seed.orgId, timedelta(seconds=settings.session_ttl)
        )

    if await _exists(
        pool,
        "SELECT 1 FROM api_keys WHERE key_hash = $1 AND org_id = $2 AND revoked_at IS NULL",
        hash_secret(seed.apiKey), seed.orgId,
    ):  # fmt: skip
        await registry.register_api_key(redis, hash_secret(seed.apiKey), seed.orgId)
    else:
        seed.apiKeyId, seed.apiKey, _ = await management.create_api_key(
            pool, redis, seed.orgId, "demo", seed.userId
        )

    version = await pool.fetchval(
        "SELECT token_version FROM workers WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL",
        seed.workerId, seed.orgId,
    )  # fmt: skip
    if version is None:
        seed.workerId, seed.heartbeatToken, _ = await management.create_worker(
            pool, redis, settings, seed.orgId, "demo-worker", seed.userId,
            description="Seeded by hb dev", sandbox_backend="local",
        )  # fmt: skip
    else:
        await registry.register_worker(redis, settings.shards, seed.workerId, seed.orgId, version)
        seed.heartbeatToken = issue_worker_token(
            settings.token_keys, settings.signing_kid, seed.workerId, version
        )
    return seed


def seed_json(seed: DemoSeed) -> dict[str, str]:
    return asdict(seed)
