"""A worker driven never -> online -> stale -> offline -> online with a short heartbeat
interval, watched through every fleet view: list filters, summary, events (list and stream,
resumed with Last-Event-ID)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from api.app import create_app
from flusher.liveness_sweep import sweep_liveness
from shared.settings import Settings
from tests.api.conftest import make_tenant
from tests.api.sse_support import StreamReader
from tests.conftest import asgi_client, make_settings
from tests.live_server import serving

DEADLINE = 20.0


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    # Stale after 1.5 s without a beat, offline after 3 s; streams poll often and keep alive
    # every 0.3 s so the test sees a keep-alive comment.
    return make_settings(
        redis_url, database_url, heartbeat_interval=0.6, stale_after=1.5, offline_after=3.0,
        flush_interval=0.2, event_poll_interval=0.05, sse_keepalive=0.3,
    )  # fmt: skip


@pytest.fixture
async def api_url(settings: Settings) -> AsyncIterator[str]:
    async with serving(create_app(settings)) as url:
        yield url


async def until(check: Callable[[], Awaitable[bool]], sweep: Callable[[], Awaitable[Any]]) -> None:
    """Sweep as the flusher would, until `check` holds (bounded)."""
    async with asyncio.timeout(DEADLINE):
        while True:
            await sweep()
            if await check():
                return
            await asyncio.sleep(0.05)


async def test_a_worker_through_never_online_stale_offline_online(
    api_url, ingest, pool, redis, settings
):
    tenant = await make_tenant(pool, redis)
    headers = tenant.as_key
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as api:
        stream = StreamReader()
        reader = asyncio.create_task(stream.read(api, "/v1/events/stream", headers))
        await stream.until(lambda: "connected" in stream.comments)

        created = await api.post("/v1/workers", json={"name": "runner-1"}, headers=headers)
        assert created.status_code == 201
        worker_id = created.json()["worker"]["id"]
        token = created.json()["heartbeatToken"]

        async def listed(liveness: str) -> list[str]:
            r = await api.get(f"/v1/workers?liveness={liveness}", headers=headers)
            assert r.status_code == 200, r.text
            return [w["id"] for w in r.json()["workers"]]

        async def summary() -> dict[str, int]:
            r = await api.get("/v1/workers/summary", headers=headers)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["total"] == 1 and body["status"]["provisioning"] == 1
            return {k: v for k, v in body["liveness"].items() if v}

        async def event_types() -> list[str]:
            r = await api.get(f"/v1/events?workerId={worker_id}", headers=headers)
            assert r.status_code == 200, r.text
            return [e["type"] for e in r.json()["events"]][::-1]

        async def beat() -> None:
            r = await ingest.post(
                f"/v1/workers/{worker_id}/activity-heartbeat",
                json={"isActiveRecently": True},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text

        async def sweep() -> None:
            await sweep_liveness(redis, pool, settings)

        # never
        assert await listed("never") == [worker_id]
        assert await listed("online,stale,offline") == []
        assert await summary() == {"never": 1}
        assert await event_types() == ["worker.created"]

        expected = ["worker.created"]
        for liveness, act in [("online", beat), ("stale", None), ("offline", None),
                              ("online", beat)]:  # fmt: skip
            if act is not None:
                await act()
            # The filter sees the state as soon as it holds; the sweep announces it.
            await until(lambda lv=liveness: _has(listed(lv), worker_id), sweep)
            others = {"online", "stale", "offline", "never"} - {liveness}
            assert await listed(",".join(sorted(others))) == []
            assert await summary() == {liveness: 1}
            expected.append(f"worker.{liveness}")
            count = len(expected)
            await until(lambda n=count: _count(event_types(), n), sweep)
            assert await event_types() == expected

        # The stream saw the same events, in order, with ids.
        streamed = await stream.wait_for(len(expected))
        assert [e["type"] for e in streamed] == expected
        assert all(e["workerId"] == worker_id for e in streamed)
        assert stream.ids == [e["id"] for e in streamed]
        await stream.until(lambda: "keep-alive" in stream.comments)
        reader.cancel()

        # Resumed after the first online: the rest, nothing before.
        resumed = StreamReader()
        resume = {**headers, "Last-Event-ID": stream.ids[1]}
        reader = asyncio.create_task(resumed.read(api, "/v1/events/stream", resume))
        again = await resumed.wait_for(3)
        assert [e["type"] for e in again] == expected[2:]
        assert [e["id"] for e in again] == stream.ids[2:]
        reader.cancel()

        listed_events = (await api.get("/v1/events", headers=headers)).json()["events"]
        assert [e["id"] for e in listed_events] == stream.ids[::-1]


async def _has(ids: Awaitable[list[str]], worker_id: str) -> bool:
    return worker_id in await ids


async def _count(types: Awaitable[list[str]], n: int) -> bool:
    return len(await types) >= n


@pytest.fixture
async def ingest(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from ingest.app import create_app as create_ingest

    async for client in asgi_client(create_ingest(settings)):
        yield client
