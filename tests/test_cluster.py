"""The same code on a Redis Cluster: ingest, the read API, the flusher and the reconcile, on a
three-node cluster started from the bundled redis-server (each script touches one slot)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis as sync_redis
from redis.asyncio import Redis

from api.app import create_app as create_api
from flusher.drain import drain_all
from flusher.reconcile import reconcile_registry
from hb.embedded import EmbeddedRedisCluster
from ingest.app import create_app as create_ingest
from shared.redis.connect import connect_redis
from shared.settings import Settings
from tests.api.conftest import make_tenant
from tests.conftest import asgi_client, make_settings


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cluster = EmbeddedRedisCluster(tmp_path_factory.mktemp("cluster"), nodes=3)
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def settings(cluster_url: str, database_url: str) -> Settings:
    return make_settings(cluster_url, database_url, redis_cluster=True, shards=16)


@pytest.fixture
async def cluster(settings: Settings) -> AsyncIterator[Redis]:
    client = connect_redis(settings)
    await client.flushall()
    yield client
    await client.aclose()


async def test_beats_reads_flushes_and_reconcile_work_on_a_cluster(
    settings: Settings, cluster: Redis, pool: asyncpg.Pool
) -> None:
    tenant = await make_tenant(pool, cluster)
    async for api in asgi_client(create_api(settings)):
        async for ingest in asgi_client(create_ingest(settings)):
            created = [
                (await api.post("/v1/workers", json={"name": f"w{n}"}, headers=tenant.as_user))
                for n in range(12)
            ]
            workers = [(c.json()["worker"]["id"], c.json()["heartbeatToken"]) for c in created]
            for worker_id, token in workers:  # spread over the shards, so over the nodes
                den = await ingest.post(
                    f"/v1/workers/{worker_id}/activity-heartbeat",
                    json={"isActiveRecently": True, "openSessionCount": 1},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert den.status_code == 200, den.text
            kubiya = await ingest.post(
                "/api/v1/workers/heartbeat",
                json={"worker_id": workers[0][0], "environment_name": "prod"},
                headers={"Authorization": f"Bearer {tenant.api_key}"},
            )
            assert kubiya.status_code == 204, kubiya.text

            listed = (await api.get("/v1/workers?limit=50", headers=tenant.as_key)).json()
            assert {w["id"] for w in listed["workers"]} == {w for w, _ in workers}
            assert all(w["liveness"] == "online" for w in listed["workers"])
            # The fleet index's reads, across the nodes.
            summary = (await api.get("/v1/workers/summary", headers=tenant.as_key)).json()
            assert summary["liveness"] == {"online": 12, "stale": 0, "offline": 0, "never": 0}
            for query, expected in (("liveness=online&limit=5", 5), ("liveness=offline", 0)):
                page = await api.get(f"/v1/workers?{query}", headers=tenant.as_key)
                assert page.status_code == 200 and len(page.json()["workers"]) == expected

            assert await drain_all(cluster, pool, settings) == len(workers)
            persisted = await pool.fetchval(
                "SELECT count(*) FROM workers WHERE last_heartbeat_at IS NOT NULL"
            )
            assert persisted == len(workers)

            await cluster.flushall()  # every node loses its data
            worker_id, token = workers[1]
            beat = {"isActiveRecently": False}
            path = f"/v1/workers/{worker_id}/activity-heartbeat"
            auth = {"Authorization": f"Bearer {token}"}
            # Not "deleted": 503 until the reconcile has rebuilt the registry.
            assert (await ingest.post(path, json=beat, headers=auth)).status_code == 503
            await reconcile_registry(cluster, pool, settings)
            assert (await ingest.post(path, json=beat, headers=auth)).status_code == 200


def test_the_test_cluster_spans_three_nodes(cluster_url: str) -> None:
    client = sync_redis.RedisCluster.from_url(cluster_url)
    try:
        assert len(client.get_primaries()) == 3
    finally:
        client.close()
