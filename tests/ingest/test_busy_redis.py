"""A Redis busy with a long script answers BUSY: a passing refusal, so 503, never a 500."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import suppress

import pytest
import redis as sync_redis

from tests.conftest import register

# Spins until killed (or 30 s pass): a read-only script, so SCRIPT KILL can end it.
SPIN = """
local start = tonumber(redis.call('TIME')[1])
while tonumber(redis.call('TIME')[1]) - start < 30 do end
return 1
"""


@pytest.fixture
def busy_redis(redis_url: str) -> Iterator[None]:
    admin = sync_redis.Redis.from_url(redis_url)
    limit = admin.config_get("lua-time-limit")["lua-time-limit"]
    admin.config_set("lua-time-limit", 20)  # BUSY replies after 20 ms instead of 5 s
    spinner = sync_redis.Redis.from_url(redis_url)
    thread = threading.Thread(target=lambda: _spin(spinner), daemon=True)
    thread.start()
    try:
        yield
    finally:
        while thread.is_alive():
            with suppress(sync_redis.ResponseError):  # not running yet, or already over
                admin.script_kill()
            thread.join(0.05)
        admin.config_set("lua-time-limit", limit)
        admin.close()
        spinner.close()


def _spin(client: sync_redis.Redis) -> None:
    with suppress(sync_redis.ResponseError):  # killed
        client.eval(SPIN, 0)


@pytest.fixture
async def worker(redis, settings):
    return await register(redis, settings)


async def test_beats_get_503_with_retry_after_while_redis_runs_a_long_script(
    ingest, settings, worker, busy_redis
):
    auth = {"Authorization": f"Bearer {worker.token}"}
    den = f"/v1/workers/{worker.id}/activity-heartbeat"
    statuses: set[int] = set()
    for _ in range(200):  # until the script is past the busy threshold
        r = await ingest.post(den, json={"isActiveRecently": True}, headers=auth)
        statuses.add(r.status_code)
        if r.status_code == 503:
            break
        await asyncio.sleep(0.01)
    assert r.status_code == 503, statuses
    assert r.headers["retry-after"] == str(settings.retry_after)
    assert r.json()["error"] == "unavailable"
    assert 500 not in statuses

    kubiya = await ingest.post(
        "/api/v1/workers/heartbeat",
        json={"worker_id": worker.id, "environment_name": "prod"},
        headers=auth,
    )
    assert kubiya.status_code == 503


async def test_redis_py_raises_the_refusal_instead_of_returning_it(redis, busy_redis):
    """redis-py raises only ResponseErrors among parsed error replies; any other class would
    come back as the command's value (arq then crashed on it)."""
    from shared.redis.connect import REDIS_DOWN

    for _ in range(200):  # until the script is past the busy threshold
        try:
            value = await redis.get("anything")
        except REDIS_DOWN:
            break
        assert value is None
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("Redis never answered BUSY")
