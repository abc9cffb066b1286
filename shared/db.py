"""Postgres: connection pools and the plain SQL migrations in `shared/migrations/`."""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

log = logging.getLogger("hb.db")

# Any constant works; it only has to be the same in every process that migrates.
MIGRATION_LOCK = 0x68622D6D6967  # "hb-mig"


def migration_files() -> list[tuple[str, str]]:
    """(version, SQL) of every migration, in order."""
    folder = resources.files("shared") / "migrations"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), (folder / name).read_text()) for name in names]


async def migrate(database_url: str) -> list[str]:
    """Apply pending migrations in order under an advisory lock; returns the versions applied."""
    conn = await asyncpg.connect(database_url)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, sql in migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", version
                    )
                log.info("applied migration %s", version)
                applied.append(version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    finally:
        await conn.close()
    return applied


async def create_pool(
    database_url: str,
    min_size: int = 1,
    max_size: int = 10,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    """A pool whose connections start with `server_settings` (kept across the pool's resets)."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=30,
        server_settings=server_settings,
    )
    assert pool is not None
    return pool


async def ensure_database(server_url: str, name: str) -> str:
    """Create database `name` on the server if missing; returns its URL."""
    conn = await asyncpg.connect(server_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"
