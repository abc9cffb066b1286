"""`hb flusher` as a real process outlives its Redis: it starts again and rebuilds the registry."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from api import management
from hb.embedded import EmbeddedRedis
from shared.contract import keys
from tests.conftest import make_settings

OUTAGE = 2.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def start_flusher(redis_url: str, database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HB_")}
    env.update(HB_REDIS_URL=redis_url, HB_DATABASE_URL=database_url, HB_SHARDS="8",
               HB_FLUSH_INTERVAL="1")  # fmt: skip
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hb.cli", "flusher"], env=env, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def logged(path: Path) -> str:
    return path.read_text()


async def wait_for(condition, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not await condition():
        assert proc.poll() is None, f"the flusher exited ({proc.returncode}):\n{logged(log)}"
        assert time.monotonic() < deadline, f"{what} did not happen:\n{logged(log)}"
        await asyncio.sleep(0.1)


async def test_the_flusher_survives_a_redis_restart_and_rebuilds_the_registry(
    own_redis: EmbeddedRedis, pool, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(own_redis.url, database_url)
    client = Redis.from_url(own_redis.url)
    org = await management.create_organization(pool, "acme")
    worker = await management.create_worker(pool, client, settings, org, "w")
    log = tmp_path / "flusher.log"
    proc = start_flusher(own_redis.url, database_url, log)
    try:

        async def synced() -> bool:
            try:
                return bool(await client.exists(keys.REGISTRY_SYNCED))
            except sync_redis.ConnectionError:
                return False

        await wait_for(synced, "the first reconcile", proc, log)
        own_redis.stop()  # persistence is off: it comes back empty
        await asyncio.sleep(OUTAGE)  # the fault: arq's polls (every 0.5 s) meet a closed port
        own_redis.start()
        await client.aclose()  # its connections ended with the server
        client = Redis.from_url(own_redis.url)
        assert not await client.exists(keys.worker_key(worker.worker_id, settings.shards))

        async def registry_rebuilt() -> bool:
            key = keys.worker_key(worker.worker_id, settings.shards)
            return await client.hget(key, keys.F_ORG) == org.encode()

        await wait_for(registry_rebuilt, "rebuilding the registry", proc, log)
        assert proc.poll() is None
    finally:
        stop(proc)
        await client.aclose()
