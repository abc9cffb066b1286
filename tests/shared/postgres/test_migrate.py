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


async def test_the_fleet_migration_counts_and_keeps_counting_a_populated_database(
    empty_database_url, monkeypatch
):
    """A deployment upgraded with workers in place: 0006 backfills the counts, and the triggers
    (0006, then 0007's) keep them from there."""
    files = migration_files()
    before_fleet = [f for f in files if f[0] < "0006"]
    monkeypatch.setattr("shared.postgres.migrate.migration_files", lambda: before_fleet)
    await migrate(empty_database_url)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute("INSERT INTO organizations (id, name) VALUES ('org_a', 'a')")
        await conn.execute(
            "INSERT INTO workers (id, org_id, name, status, deleted_at) VALUES"
            " ('w1', 'org_a', 'one', 'healthy', NULL), ('w2', 'org_a', 'two', 'healthy', NULL),"
            " ('w3', 'org_a', 'three', 'failed', NULL), ('w4', 'org_a', 'gone', 'failed', now())"
        )
        monkeypatch.setattr("shared.postgres.migrate.migration_files", lambda: files)
        assert [v[:4] for v in await migrate(empty_database_url)] == [
            f[0][:4] for f in files if f[0] >= "0006"
        ]

        async def counts() -> dict[str, int]:
            rows = await conn.fetch("SELECT status::text, n FROM worker_counts WHERE n <> 0")
            return {r["status"]: r["n"] for r in rows}

        assert await counts() == {"healthy": 2, "failed": 1}
        await conn.execute("INSERT INTO workers (id, org_id, name) VALUES ('w5', 'org_a', 'new')")
        await conn.execute("UPDATE workers SET deleted_at = now() WHERE id = 'w1'")
        assert await counts() == {"healthy": 1, "failed": 1, "provisioning": 1}
    finally:
        await conn.close()
