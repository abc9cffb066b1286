"""`hb simulate` against the real ingest and API apps (in-process), on real Redis and Postgres."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from api import management
from api.app import create_app as create_api
from hb.commands.simulate import SimulationError, simulate
from ingest.app import create_app as create_ingest
from shared.settings import Settings
from tests.conftest import asgi_client, make_settings


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    return make_settings(redis_url, database_url)


@pytest.fixture
async def org_key(database_url: str, redis: Redis) -> str:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    assert pool is not None
    try:
        org_id = await management.create_organization(pool, "sim")
        _, secret, _ = await management.create_api_key(pool, redis, org_id, "sim")
    finally:
        await pool.close()
    return secret


@pytest.fixture
async def clients(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async for ingest in asgi_client(create_ingest(settings)):
        async for api in asgi_client(create_api(settings)):
            yield ingest, api


async def test_simulated_workers_register_and_beat_through_every_route(clients, org_key) -> None:
    ingest, api = clients
    tally = await simulate(
        ingest, api, org_key, workers=8, interval=0.05, duration=1.5, out=io.StringIO(), seed=7
    )
    assert tally.ok > 0 and tally.errors == {}
    headers = {"x-api-key": org_key}
    listed = (await api.get("/v1/workers", headers=headers)).json()["workers"]
    assert len(listed) == 8
    assert all(w["lastHeartbeatAt"] is not None for w in listed)
    # The fourth and the eighth speak Kubiya's routes, which report a status; the eighth, on the
    # per-worker route, sent full beats too: system info and log lines.
    kubiya = [w for w in listed if w["reportedStatus"] is not None]
    assert len(kubiya) == 2
    details = [
        (await api.get(f"/v1/workers/{w['id']}", headers=headers)).json()["worker"] for w in kubiya
    ]
    full = [d for d in details if d["recentLogs"]]
    assert len(full) == 1
    assert full[0]["systemInfo"]["cpu_count"] == 2


async def test_delete_removes_the_simulated_workers_afterwards(clients, org_key) -> None:
    ingest, api = clients
    await simulate(ingest, api, org_key, 2, 0.05, 0.2, out=io.StringIO(), delete=True)
    listed = (await api.get("/v1/workers", headers={"x-api-key": org_key})).json()["workers"]
    assert listed == []


async def test_a_wrong_api_key_stops_before_any_beat(clients) -> None:
    ingest, api = clients
    with pytest.raises(SimulationError, match="401"):
        await simulate(ingest, api, "hbk_wrong", 2, 0.05, 0.2, out=io.StringIO())


async def test_quiet_workers_fall_silent_and_the_target_rate_is_shown(clients, org_key) -> None:
    ingest, api = clients
    out = io.StringIO()
    tally = await simulate(
        ingest, api, org_key, workers=4, interval=0.05, duration=1.0, out=out, seed=3,
        quiet_fraction=0.5,
    )  # fmt: skip
    assert len(tally.fell_silent) == 2
    assert tally.beating == 2
    assert "target 80.0 beats/s" in out.getvalue()
    assert "2 of them fall silent" in out.getvalue()


def test_the_progress_line_shows_the_achieved_rate_beside_the_target() -> None:
    from hb.commands.simulate import Tally, progress_line

    tally = Tally(ok=90, beating=10, fell_silent=["wrk_a"])
    line = progress_line(tally, 19.5, 0.5, 12)
    assert line == "beats 90 ok, 0 errors, 19.5/s of 20.0/s target, 1 silent, 12s left"


async def test_a_worker_on_kubiyas_per_worker_route_disconnects_as_it_falls_silent(
    clients, org_key
) -> None:
    ingest, api = clients
    tally = await simulate(
        ingest, api, org_key, workers=8, interval=0.05, duration=1.0, out=io.StringIO(), seed=5,
        quiet_fraction=1.0,
    )  # fmt: skip
    assert len(tally.fell_silent) == 8 and tally.errors == {}
    listed = (await api.get("/v1/workers", headers={"x-api-key": org_key})).json()["workers"]
    by_name = {w["name"].rsplit("-", 1)[1]: w for w in listed}
    assert (by_name["7"]["disconnectReason"], by_name["7"]["liveness"]) == ("shutdown", "offline")
    assert all(by_name[i]["disconnectReason"] is None for i in "0123456")
