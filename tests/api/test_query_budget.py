"""What one page costs: counted at the drivers, so nothing the routes do can hide from it.

Postgres: every statement a connection of the API's pool runs (asyncpg query loggers), which
includes the caller's credential check: it is folded into the page's statement.
Redis: every packet of commands written to a connection, i.e. one per round trip.
"""

from __future__ import annotations

import asyncpg
import pytest
from redis.asyncio.connection import AbstractConnection

from api import management
from api.app import create_app
from shared.redis.pipe import RedisPipe
from tests.conftest import asgi_client


@pytest.fixture
async def counted_api(settings, monkeypatch):
    statements: list[str] = []
    real_create_pool = asyncpg.create_pool

    async def log_queries(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: statements.append(record.query))

    def create_pool(*args, **kwargs):
        return real_create_pool(*args, init=log_queries, **kwargs)

    monkeypatch.setattr(asyncpg, "create_pool", create_pool)
    round_trips: list[bytes] = []
    real_send = AbstractConnection.send_packed_command

    async def send_packed_command(self, command, check_health=True):
        round_trips.append(command)
        return await real_send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send_packed_command)
    real_pipe_send = RedisPipe._send

    def pipe_send(self, conn, packed, commands=0):
        round_trips.append(packed)
        return real_pipe_send(self, conn, packed, commands)

    monkeypatch.setattr(RedisPipe, "_send", pipe_send)
    async for client in asgi_client(create_app(settings)):
        yield client, statements, round_trips


async def test_a_page_costs_one_postgres_statement_and_one_redis_round_trip(
    counted_api, pool, redis, settings, tenant
):
    api, statements, round_trips = counted_api
    for n in range(30):
        worker_id, _, _ = await management.create_worker(
            pool, redis, settings, tenant.org_id, f"w{n}"
        )
        await pool.execute(
            "INSERT INTO worker_instances (id, worker_id, provider, status)"
            " VALUES ($1, $2, 'p', 'up')",
            f"ins_{n}", worker_id,
        )  # fmt: skip
    # The first request opens connections (and their handshakes); count from the second on.
    first = await api.get("/v1/workers", params={"limit": 25}, headers=tenant.as_user)
    statements.clear()
    round_trips.clear()

    r = await api.get(
        "/v1/workers",
        params={"limit": 25, "cursor": first.json()["nextCursor"]},
        headers=tenant.as_key,
    )
    assert r.status_code == 200
    assert len(r.json()["workers"]) == 5
    assert all(w["instance"] is not None for w in r.json()["workers"])
    assert len(statements) == 1, statements
    assert len(round_trips) == 1

    statements.clear()
    round_trips.clear()
    r = await api.get("/v1/workers", params={"limit": 25}, headers=tenant.as_user)
    assert len(r.json()["workers"]) == 25
    assert (len(statements), len(round_trips)) == (1, 1), [s[:80] for s in statements]


async def test_a_detail_read_costs_one_statement_and_one_round_trip(
    counted_api, pool, redis, settings, tenant
):
    api, statements, round_trips = counted_api
    worker_id, _, _ = await management.create_worker(pool, redis, settings, tenant.org_id, "w")
    await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_user)
    statements.clear()
    round_trips.clear()

    r = await api.get(f"/v1/workers/{worker_id}", headers=tenant.as_user)

    assert r.status_code == 200
    assert (len(statements), len(round_trips)) == (1, 1), [s[:80] for s in statements]


async def test_page_statements_are_planned_once_per_connection(pool, redis, settings, tenant):
    await management.create_worker(pool, redis, settings, tenant.org_id, "w")
    app = create_app(settings)
    async for api in asgi_client(app):
        for _ in range(10):
            assert (await api.get("/v1/workers", headers=tenant.as_key)).status_code == 200
        # Sequential reads all ran on the one connection the reads keep: this one.
        plans = await app.state.api.read(
            lambda conn: conn.fetch(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE '%LEFT JOIN LATERAL%' AND statement NOT LIKE '%pg_prepared%'"
            )
        )
        assert [(p["generic_plans"] > 0, p["custom_plans"]) for p in plans] == [(True, 0)]
