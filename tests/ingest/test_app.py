"""The ingest app as a whole: health, readiness, and a clear JSON answer to any bad request."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from hb.embedded import EmbeddedRedis
from ingest.app import create_app
from shared.contract import registry, typeid
from shared.contract.times import format_ms, now_ms
from tests.conftest import asgi_client, make_settings, register
from tests.metrics_text import sample

DEN = "/v1/workers/{}/activity-heartbeat"
KUBIYA = "/api/v1/workers/heartbeat"
JSON = {"content-type": "application/json"}
WORKER = "wrk_01h455vb4pex5vsknk084sn02q"


def assert_json_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    assert response.json()


async def test_health_answers_while_the_process_is_up(ingest):
    r = await ingest.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_ready_answers_200_when_redis_is_reachable(ingest):
    r = await ingest.get("/ready")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"


@pytest.mark.parametrize("path", ["/", "/v1/workers", "/v1/workers/x/activity", "/nope"])
async def test_unknown_route_is_404_json(ingest, path):
    r = await ingest.post(path, json={})
    assert_json_error(r, 404)
    assert r.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", DEN.format("wrk_01h455vb4pex5vsknk084sn02q")),
        ("PUT", DEN.format("wrk_01h455vb4pex5vsknk084sn02q")),
        ("DELETE", KUBIYA),
        ("GET", KUBIYA),
        ("POST", "/health"),
        ("POST", "/ready"),
    ],
)
async def test_wrong_method_is_405_json(ingest, method, path):
    r = await ingest.request(method, path)
    assert_json_error(r, 405)
    assert r.json()["error"] == "method_not_allowed"
    assert r.headers["allow"] == ("POST" if path in (KUBIYA, DEN.format(WORKER)) else "GET, HEAD")


@pytest.fixture
async def worker_and_headers(redis, settings):
    worker = await register(redis, settings)
    return worker, {"Authorization": f"Bearer {worker.token}"}


BAD_BODIES = [
    pytest.param(b"", JSON, id="empty"),
    pytest.param(b"{", JSON, id="truncated"),
    pytest.param(b"{'single': 'quotes'}", JSON, id="not-json"),
    pytest.param(b'{"a": 1} trailing', JSON, id="trailing-garbage"),
    pytest.param(b"\xff\xfe\x00", JSON, id="not-utf8"),
    pytest.param(b"null", JSON, id="null"),
    pytest.param(b"[" * 30_000 + b"]" * 30_000, JSON, id="deeply-nested"),
    pytest.param(b'{"isActiveRecently": true}', {}, id="no-content-type"),
    pytest.param(b'{"isActiveRecently": true}', {"content-type": "text/plain"}, id="text-plain"),
    pytest.param(
        b'{"isActiveRecently": true}',
        {"content-type": "application/x-www-form-urlencoded"},
        id="form",
    ),
]


@pytest.mark.parametrize(("content", "headers"), BAD_BODIES)
async def test_bad_den_body_is_400_json(ingest, worker_and_headers, content, headers):
    worker, auth = worker_and_headers
    r = await ingest.post(DEN.format(worker.id), content=content, headers={**auth, **headers})
    assert_json_error(r, 400)
    assert r.json()["error"] == "invalid_request"
    assert r.json()["details"][0]["message"]


@pytest.mark.parametrize(("content", "headers"), BAD_BODIES)
async def test_bad_kubiya_body_is_422_json(ingest, worker_and_headers, content, headers):
    _, auth = worker_and_headers
    r = await ingest.post(KUBIYA, content=content, headers={**auth, **headers})
    assert_json_error(r, 422)
    assert r.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize("path", [DEN, KUBIYA])
async def test_body_over_max_body_bytes_is_413_json(ingest, worker_and_headers, settings, path):
    worker, auth = worker_and_headers
    content = b'{"pad": "' + b"x" * settings.max_body_bytes + b'"}'
    r = await ingest.post(path.format(worker.id), content=content, headers={**auth, **JSON})
    assert_json_error(r, 413)


async def test_streamed_body_over_the_limit_is_413_json(ingest, worker_and_headers, settings):
    worker, auth = worker_and_headers

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.max_body_bytes // 1024 + 2):
            yield b" " * 1024

    r = await ingest.post(DEN.format(worker.id), content=chunks(), headers={**auth, **JSON})
    assert_json_error(r, 413)
    assert r.json()["error"] == "payload_too_large"


async def test_charset_parameter_and_json_suffix_types_are_json(ingest, worker_and_headers):
    worker, auth = worker_and_headers
    for ctype in ("application/json; charset=utf-8", "Application/JSON", "application/vnd+json"):
        r = await ingest.post(
            DEN.format(worker.id),
            content=b'{"isActiveRecently": true}',
            headers={**auth, "content-type": ctype},
        )
        assert r.status_code == 200, (ctype, r.text)


async def test_metrics_expose_accepted_and_rejected_beats(ingest, worker_and_headers):
    worker, auth = worker_and_headers
    await ingest.post(DEN.format(worker.id), json={"isActiveRecently": True}, headers=auth)
    await ingest.post(DEN.format(worker.id), json={"isActiveRecently": True})
    r = await ingest.get("/metrics")
    assert r.status_code == 200
    assert sample(r.text, "hb_beats_accepted_total", contract="den") == 1
    assert sample(r.text, "hb_beats_rejected_total", reason="unauthorized") == 1


async def register_on(url: str, settings, worker=None):
    client = Redis.from_url(url)
    try:
        if worker is None:
            return await register(client, settings)
        await registry.register_worker(
            client, settings.shards, worker.id, worker.org_id, worker.version
        )
        return worker
    finally:
        await client.aclose()


async def test_redis_outage_answers_503_then_recovers_without_restart(
    tmp_path: Path, caplog, monkeypatch
):
    monkeypatch.setattr("ingest.state.RECOVERED_AFTER", 0.0)  # the first stored beat says so
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    try:
        settings = make_settings(server.url, redis_timeout=0.5, retry_after=3)
        worker = await register_on(server.url, settings)
        auth = {"Authorization": f"Bearer {worker.token}"}
        den, beat = DEN.format(worker.id), {"isActiveRecently": True}
        kubiya = {"worker_id": worker.id, "environment_name": "prod"}
        async for client in asgi_client(create_app(settings)):
            assert (await client.post(den, json=beat, headers=auth)).status_code == 200

            server.stop()
            per_worker = f"/api/v1/workers/{worker.id}/"
            for r in (
                await client.post(den, json=beat, headers=auth),
                await client.post(KUBIYA, json=kubiya, headers=auth),
                await client.post(KUBIYA, json=kubiya, headers={"Authorization": "Bearer hbk_x"}),
                await client.post(per_worker + "heartbeat", json={}, headers=auth),
                await client.post(per_worker + "disconnect", json={}, headers=auth),
                await client.get("/ready"),
            ):
                assert_json_error(r, 503)
                assert r.headers["retry-after"] == "3"
            assert (await client.get("/health")).status_code == 200
            # One warning for the outage, not one per refused beat.
            outage = [r.getMessage() for r in caplog.records if r.name == "hb.ingest"]
            assert len(outage) == 1 and outage[0].startswith("Redis unavailable"), outage

            server.start()  # the same port; a fresh server, so the registry is re-synced
            await register_on(server.url, settings, worker)
            fresh = Redis.from_url(server.url)
            await registry.mark_synced(fresh, settings.shards)  # as the flusher's reconcile does
            await fresh.aclose()
            deadline = time.monotonic() + 10
            while True:
                r = await client.post(den, json=beat, headers=auth)
                if r.status_code == 200 or time.monotonic() > deadline:
                    break
            assert r.status_code == 200, r.text
            assert (await client.post(KUBIYA, json=kubiya, headers=auth)).status_code == 204
            assert (
                await client.post(per_worker + "heartbeat", headers=auth, json={})
            ).status_code == 204
            assert (await client.get("/ready")).status_code == 200
            outage = [r.getMessage() for r in caplog.records if r.name == "hb.ingest"]
            assert outage[-1].startswith("Redis available again"), outage
    finally:
        server.stop()


async def test_unknown_worker_id_is_never_a_server_error(ingest, settings):
    r = await ingest.post(
        DEN.format(typeid.new_id(typeid.WORKER)),
        json={"isActiveRecently": True, "sentAt": format_ms(now_ms())},
    )
    assert_json_error(r, 401)


async def test_redis_refusing_writes_out_of_memory_answers_503_not_500(ingest, redis, settings):
    worker = await register(redis, settings)
    await redis.config_set("maxmemory", "1")
    try:
        r = await ingest.post(
            f"/v1/workers/{worker.id}/activity-heartbeat",
            json={"isActiveRecently": True},
            headers={"Authorization": f"Bearer {worker.token}"},
        )
    finally:
        await redis.config_set("maxmemory", "0")
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "unavailable"
    assert "retry-after" in r.headers
