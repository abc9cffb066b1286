"""The plain SQL migrations in `shared/postgres/migrations/`, applied in order under a lock."""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

log = logging.getLogger("hb.postgres")

# Any constant works; it only has to be the same in every process that migrates.
MIGRATION_LOCK = 0x68622D6D6967  # "hb-mig"


def migration_files() -> list[tuple[str, str]]:
    """(version, SQL) of every migration, in order."""
    folder = resources.files("shared.postgres") / "migrations"
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
