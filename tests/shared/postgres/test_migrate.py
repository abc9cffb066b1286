import asyncio
import secrets
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from hb.embedded import ensure_database
from shared.postgres.migrate import migrate, migration_files

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def empty_database_url(pg_server_url):
    name = f"hb_mig_{secrets.token_hex(6)}"
    url = await ensure_database(pg_server_url, name)
    yield url
    conn = await asyncpg.connect(pg_server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def applied_versions(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    return [r["version"] for r in rows]


async def test_migrations_apply_in_order_once_and_then_are_a_no_op(empty_database_url):
    versions = [v for v, _ in migration_files()]
    assert versions == sorted(versions) and versions

    assert await migrate(empty_database_url) == versions
    assert await migrate(empty_database_url) == []
    assert await applied_versions(empty_database_url) == versions


async def test_concurrent_migrations_apply_each_version_exactly_once(empty_database_url):
    results = await asyncio.gather(*(migrate(empty_database_url) for _ in range(4)))

    versions = [v for v, _ in migration_files()]
    assert sorted(results, key=len) == [[], [], [], versions]
    assert await applied_versions(empty_database_url) == versions


async def test_hb_migrate_from_several_processes_at_once(empty_database_url):
    command = [sys.executable, "-m", "hb.cli", "migrate", "--database-url", empty_database_url]
    procs = [
        await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    outputs = [await p.communicate() for p in procs]

    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    said = sorted(out.decode() for out, _ in outputs)
    assert said[:2] == ["applied 0 migration(s): none pending\n"] * 2
    assert await applied_versions(empty_database_url) == [v for v, _ in migration_files()]
