"""The same code on a Redis Cluster: ingest, the read API, the flusher and the reconcile, on a
three-node cluster started from the bundled redis-server (each script touches one slot)."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis as sync_redis
from redis.asyncio import Redis

from api.app import create_app as create_api
from flusher.drain import drain_all
from flusher.reconcile import reconcile_registry
from hb.embedded import EmbeddedRedis, redis_server_binary
from ingest.app import create_app as create_ingest
from shared.redis.connect import connect_redis
from shared.settings import Settings
from tests.api.conftest import make_tenant
from tests.conftest import asgi_client, make_settings


def _cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too, so at most 55535."""
    for _ in range(1000):
        port = random.randint(20_000, 55_535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("cluster")
    nodes = [
        EmbeddedRedis(directory / str(n), _cluster_port(), extra_args=["--cluster-enabled", "yes"])
        for n in range(3)
    ]
    try:
        for node in nodes:
            node.start()
        subprocess.run(
            [str(redis_server_binary().parent / "redis-cli"), "--cluster", "create",
             *(f"127.0.0.1:{node.port}" for node in nodes), "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        first = sync_redis.Redis(port=nodes[0].port)
        deadline = time.monotonic() + 30
        while first.cluster("info")["cluster_state"] != "ok":  # every node learns every slot
            assert time.monotonic() < deadline, "the cluster did not converge"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{nodes[0].port}/0"
    finally:
        for node in nodes:
            node.stop()


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
