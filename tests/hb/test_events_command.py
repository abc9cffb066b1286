"""`hb events` against the API served on a local port, on real Redis and Postgres."""

from __future__ import annotations

import argparse
import asyncio
import io
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from hb.commands import events
from shared.settings import Settings
from tests.api.conftest import make_tenant
from tests.conftest import make_settings
from tests.live_server import serving


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    return make_settings(redis_url, database_url, event_poll_interval=0.05)


@pytest.fixture
async def api_url(settings: Settings) -> AsyncIterator[str]:
    async with serving(create_app(settings)) as url:
        yield url


async def test_follow_prints_new_events_and_resumes_after_the_last(api_url, pool, redis) -> None:
    tenant = await make_tenant(pool, redis)
    out = io.StringIO()
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as api:
        follower = asyncio.create_task(events.follow(api, tenant.api_key, out, max_events=1))
        # Workers keep being created until the follower (which starts after some of them)
        # has printed one: only events after it connected reach it.
        async with asyncio.timeout(15):
            while not follower.done():
                await api.post("/v1/workers", json={"name": "r"}, headers=tenant.as_key)
                await asyncio.wait({follower}, timeout=0.1)
        last_id = follower.result()
        assert "worker.created" in out.getvalue()

        await api.post("/v1/workers", json={"name": "after"}, headers=tenant.as_key)
        resumed = io.StringIO()
        async with asyncio.timeout(15):
            next_id = await events.follow(
                api, tenant.api_key, resumed, last_id=last_id, max_events=1
            )
        # The event right after the last one printed: none skipped, none repeated.
        listed = (await api.get("/v1/events", headers=tenant.as_key)).json()["events"]
        ids = [e["id"] for e in listed][::-1]
        assert next_id == ids[ids.index(last_id) + 1]
        assert "worker.created" in resumed.getvalue()


async def test_list_prints_the_latest_events(api_url, pool, redis) -> None:
    tenant = await make_tenant(pool, redis)
    out = io.StringIO()
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as api:
        await api.post("/v1/workers", json={"name": "a"}, headers=tenant.as_key)
        await events.list_events(api, tenant.api_key, 5, "worker.created", out)
    assert out.getvalue().count("worker.created") == 1


def test_without_credentials_it_says_what_is_needed(capsys) -> None:
    args = argparse.Namespace(credentials=None, api_url=None, api_key=None, follow=False)
    assert events.run(args) == 1
    assert "--api-url" in capsys.readouterr().err
