from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.app import create_app
from flusher.webhook_delivery import deliver_due
from shared.contract.webhook_signature import HEADER, verify
from shared.settings import Settings
from shared.web import address_guard
from tests.conftest import asgi_client, make_settings
from tests.live_server import serving

DEADLINE = 15.0


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    return make_settings(
        redis_url, database_url, webhook_allow_private=True, webhook_backoff=0.05,
        webhook_timeout=1.0,
    )  # fmt: skip


class Receiver:
    """A local HTTP receiver: answers each request with the next status (the last repeats)."""

    def __init__(self, statuses: list[int], hang: bool = False) -> None:
        self.statuses = statuses
        self.hang = hang
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), await request.body()))
        if self.hang:
            await asyncio.Event().wait()  # never answers
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        return Response(status_code=status)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    r = Receiver([500, 200])
    async with serving(r.app) as url:
        yield r, f"{url}/hook"


async def until(check: Callable[[], Awaitable[bool]], run: Callable[[], Awaitable[object]]) -> None:
    async with asyncio.timeout(DEADLINE):
        while not await check():
            await run()
            await asyncio.sleep(0.02)


async def test_webhooks_are_created_listed_and_deleted(api, tenant, receiver):
    _, url = receiver
    r = await api.post(
        "/v1/webhooks", json={"url": url, "events": ["worker.offline"], "description": "pager"},
        headers=tenant.as_user,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_")
    hook = created["webhook"]
    assert hook["url"] == url and hook["events"] == ["worker.offline"]

    listed = (await api.get("/v1/webhooks", headers=tenant.as_key)).json()["webhooks"]
    assert listed == [hook]  # no secret
    assert (
        await api.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=tenant.as_key)
    ).json() == {"deliveries": [], "nextCursor": None}
    assert (
        await api.delete(f"/v1/webhooks/{hook['id']}", headers=tenant.as_key)
    ).status_code == 204
    assert (
        await api.delete(f"/v1/webhooks/{hook['id']}", headers=tenant.as_key)
    ).status_code == 404
    assert (await api.get("/v1/webhooks", headers=tenant.as_key)).json() == {"webhooks": []}


@pytest.mark.parametrize(
    "body",
    [{"url": "ftp://example.com/x", "events": ["worker.online"]},
     {"url": "https://example.com/x", "events": ["worker.exploded"]},
     {"url": "https://example.com/x", "events": []}],
)  # fmt: skip
async def test_invalid_webhooks_are_invalid_request(api, tenant, body):
    r = await api.post("/v1/webhooks", json=body, headers=tenant.as_user)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://[::1]/x",
            "http://169.254.169.254/latest", "http://localhost/x"],
)  # fmt: skip
async def test_private_and_loopback_urls_are_refused_unless_allowed(settings, tenant, url):
    async for strict in asgi_client(create_app(replace(settings, webhook_allow_private=False))):
        r = await strict.post(
            "/v1/webhooks", json={"url": url, "events": ["worker.online"]}, headers=tenant.as_key
        )
        assert r.status_code == 400, r.text
        assert r.json()["details"][0]["path"] == ["url"]


async def test_a_delivery_is_signed_and_retried_after_the_receiver_fails(
    api, pool, settings, tenant, receiver
):
    rec, url = receiver
    r = await api.post(
        "/v1/webhooks", json={"url": url, "events": ["worker.created"]}, headers=tenant.as_user
    )
    secret, hook_id = r.json()["secret"], r.json()["webhook"]["id"]
    worker = await api.post("/v1/workers", json={"name": "w"}, headers=tenant.as_user)
    worker_id = worker.json()["worker"]["id"]

    async def delivered() -> bool:
        return len(rec.requests) >= 2

    await until(delivered, lambda: deliver_due(pool, settings))

    for headers, body in rec.requests:
        assert verify(secret, body, headers[HEADER.lower()])
        assert not verify("whsec_other", body, headers[HEADER.lower()])
        assert headers["content-type"] == "application/json"
        event = json.loads(body)
        assert (event["type"], event["workerId"]) == ("worker.created", worker_id)
    listed = (await api.get("/v1/events", headers=tenant.as_key)).json()["events"]
    assert json.loads(rec.requests[1][1]) == listed[0]
    deliveries = (
        await api.get(f"/v1/webhooks/{hook_id}/deliveries", headers=tenant.as_key)
    ).json()["deliveries"]
    assert [(d["status"], d["attempts"], d["lastError"], d["eventType"]) for d in deliveries] == [
        ("delivered", 2, "HTTP 500", "worker.created")
    ]
    # Delivered once: later runs post nothing.
    assert await deliver_due(pool, settings) == []


async def test_a_dead_receiver_delays_no_other_webhook_and_is_given_up_on(
    api, pool, settings, tenant, receiver
):
    rec, good_url = receiver
    rec.statuses = [204]
    dead = Receiver([200], hang=True)
    async with serving(dead.app) as dead_base:
        for url in (good_url, f"{dead_base}/hook"):
            r = await api.post(
                "/v1/webhooks", json={"url": url, "events": ["worker.created"]},
                headers=tenant.as_user,
            )  # fmt: skip
            assert r.status_code == 201
        await api.post("/v1/workers", json={"name": "w"}, headers=tenant.as_user)
        quick_give_up = replace(settings, webhook_retry_for=0.5)

        outcomes = await deliver_due(pool, quick_give_up)

    assert sorted(o.error is None for o in outcomes) == [False, True]
    assert len(rec.requests) == 1
    statuses = await pool.fetch("SELECT status, last_error FROM webhook_deliveries ORDER BY id")
    by_status = {s["status"]: s["last_error"] for s in statuses}
    assert set(by_status) == {"delivered", "failed"}
    assert "Timeout" in by_status["failed"]


def resolving(monkeypatch: pytest.MonkeyPatch, names: dict[str, str]) -> list[str]:
    """Make the delivery's lookups answer `names` (name -> address); the names looked up."""
    asked: list[str] = []

    async def addresses(host: str, port: int) -> list[str]:
        asked.append(host)
        return [names[host]]

    monkeypatch.setattr(address_guard, "_addresses", addresses)
    return asked


async def test_a_delivery_connects_to_the_address_it_checked(
    api, pool, settings, tenant, receiver, monkeypatch
):
    """The name is looked up once per attempt, and the post goes to that address with the name
    in Host: `hooks.test` resolves nowhere else, so a second lookup could not have connected."""
    rec, url = receiver
    rec.statuses = [204]
    port = urlsplit(url).port
    asked = resolving(monkeypatch, {"hooks.test": "127.0.0.1"})
    named = f"http://hooks.test:{port}/hook"
    r = await api.post(
        "/v1/webhooks", json={"url": named, "events": ["worker.created"]}, headers=tenant.as_user
    )
    assert r.status_code == 201, r.text
    await api.post("/v1/workers", json={"name": "w"}, headers=tenant.as_user)

    outcomes = await deliver_due(pool, settings)

    assert [o.error for o in outcomes] == [None]
    assert asked == ["hooks.test"]
    assert [headers["host"] for headers, _ in rec.requests] == [f"hooks.test:{port}"]


async def test_a_name_that_now_resolves_to_a_private_address_is_not_posted_to(
    api, pool, settings, tenant, receiver, monkeypatch
):
    rec, url = receiver
    named = f"http://hooks.test:{urlsplit(url).port}/hook"
    r = await api.post(
        "/v1/webhooks", json={"url": named, "events": ["worker.created"]}, headers=tenant.as_user
    )
    assert r.status_code == 201, r.text
    await api.post("/v1/workers", json={"name": "w"}, headers=tenant.as_user)
    resolving(monkeypatch, {"hooks.test": "127.0.0.1"})

    outcomes = await deliver_due(pool, replace(settings, webhook_allow_private=False))

    assert len(outcomes) == 1 and (outcomes[0].error or "").startswith("refused: ")
    assert rec.requests == []


async def _unreachable_hook(api, tenant) -> str:
    """A webhook on worker.created whose deliveries stay pending (nothing delivers them here)."""
    r = await api.post(
        "/v1/webhooks",
        json={"url": "https://example.invalid/hook", "events": ["worker.created"]},
        headers=tenant.as_user,
    )
    assert r.status_code == 201, r.text
    return r.json()["webhook"]["id"]


async def test_deleting_a_webhook_fails_its_pending_deliveries(api, pool, settings, tenant):
    hook_id = await _unreachable_hook(api, tenant)
    await api.post("/v1/workers", json={"name": "w"}, headers=tenant.as_user)
    assert await pool.fetchval("SELECT status FROM webhook_deliveries") == "pending"

    assert (await api.delete(f"/v1/webhooks/{hook_id}", headers=tenant.as_user)).status_code == 204

    row = await pool.fetchrow("SELECT status, last_error FROM webhook_deliveries")
    assert (row["status"], row["last_error"]) == ("failed", "webhook deleted")
    assert await deliver_due(pool, settings) == []


async def test_deliveries_are_paged_newest_first(api, pool, settings, tenant):
    hook_id = await _unreachable_hook(api, tenant)
    for n in range(5):
        await api.post("/v1/workers", json={"name": f"w{n}"}, headers=tenant.as_user)
    url = f"/v1/webhooks/{hook_id}/deliveries"
    everything = (await api.get(url, headers=tenant.as_key)).json()
    assert len(everything["deliveries"]) == 5 and everything["nextCursor"] is None

    seen, query = [], "?limit=2"
    while True:
        page = (await api.get(url + query, headers=tenant.as_key)).json()
        assert len(page["deliveries"]) <= 2
        seen += page["deliveries"]
        if page["nextCursor"] is None:
            break
        query = f"?limit=2&cursor={page['nextCursor']}"
    assert seen == everything["deliveries"]
    assert [int(d["id"]) for d in seen] == sorted((int(d["id"]) for d in seen), reverse=True)
    for bad in ("?limit=0", "?limit=101", "?cursor=x1"):
        r = await api.get(url + bad, headers=tenant.as_key)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", bad
