"""Den's heartbeat route under generated bodies: every answer is one the contract lists.

A worker with a valid token beats, so a body gets past the token check and its times are
parsed; only 200, 400, 401 and 404 may come back, never a 500.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import hypothesis
import pytest
from hypothesis import strategies as st
from redis.asyncio import Redis

from ingest.app import create_app
from shared.contract import registry, typeid
from shared.contract.times import DATE_TIME_PATTERN
from shared.contract.tokens import issue_worker_token
from shared.settings import Settings
from tests.conftest import asgi_client

ANSWERS = {200, 400, 401, 404}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
times = st.from_regex(DATE_TIME_PATTERN) | st.text() | json_values
den_bodies = st.fixed_dictionaries(
    {"isActiveRecently": st.booleans() | json_values},
    optional={
        "sentAt": times,
        "lastActivityAt": times | st.none(),
        "openSessionCount": st.integers() | st.floats() | json_values,
    },
)
bodies = den_bodies | json_values


class Beater:
    """One app and one registered worker for every generated example, on one event loop."""

    def __init__(self, runner: asyncio.Runner, client: httpx.AsyncClient, url: str, token: str):
        self.runner, self.client, self.url, self.token = runner, client, url, token

    def post(self, content: bytes) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        return self.runner.run(self.client.post(self.url, content=content, headers=headers))


async def _open(stack: AsyncExitStack, settings: Settings) -> httpx.AsyncClient:
    clients: AsyncIterator[httpx.AsyncClient] = asgi_client(create_app(settings))
    stack.push_async_callback(clients.aclose)  # type: ignore[attr-defined]
    return await anext(clients)


async def _register(settings: Settings, worker_id: str) -> None:
    redis = Redis.from_url(settings.redis_url)
    org = typeid.new_id(typeid.ORG)
    await registry.register_worker(redis, settings.shards, worker_id, org, 1)
    await redis.aclose()


@pytest.fixture
def beater(settings: Settings) -> Iterator[Beater]:
    worker_id = typeid.new_id(typeid.WORKER)
    token = issue_worker_token(settings.token_keys, "k1", worker_id, 1)
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()
        client = runner.run(_open(stack, settings))
        runner.run(_register(settings, worker_id))
        try:
            yield Beater(runner, client, f"/v1/workers/{worker_id}/activity-heartbeat", token)
        finally:
            runner.run(stack.aclose())


FUZZ = hypothesis.settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    # One app and worker serve every example on purpose: the route keeps no per-request state.
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)


@FUZZ
@hypothesis.given(body=bodies)
def test_any_json_body_gets_a_contract_status(beater: Beater, body: Any) -> None:
    r = beater.post(json.dumps(body).encode())
    assert r.status_code in ANSWERS, (body, r.text)


@FUZZ
@hypothesis.given(raw=st.binary(max_size=200))
def test_any_bytes_get_a_contract_status(beater: Beater, raw: bytes) -> None:
    r = beater.post(raw)
    assert r.status_code in ANSWERS, (raw, r.text)
