"""Tracing through the services, on real Redis and Postgres: an API request, a flusher drain and
ingest's sampled beats make the spans docs/operations.md#tracing lists; with tracing off none is
made at all."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from api import management
from api.app import create_app as create_api
from flusher.worker import flush_dirty, shutdown, startup
from ingest.app import IngestApp
from ingest.app import create_app as create_ingest
from ingest.den_route import DenHeartbeatRoute
from ingest.group_commit import GroupCommitter
from shared import tracing
from shared.settings import Settings
from tests.conftest import asgi_client

DEN = "/v1/workers/{}/activity-heartbeat"
KUBIYA = "/api/v1/workers/heartbeat"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on, to memory: the apps started after it trace there."""
    spans = InMemorySpanExporter()
    tracing.start_tracing(Settings(), "hb-test", exporter=spans)
    yield spans
    tracing.stop_tracing()


async def client_for(app: object) -> AsyncIterator[httpx.AsyncClient]:
    async for client in asgi_client(app):
        yield client


@pytest.fixture
async def traced_api(exporter, settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in asgi_client(create_api(settings)):
        yield client


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


async def beat(client: httpx.AsyncClient, worker_id: str, token: str) -> None:
    r = await client.post(
        DEN.format(worker_id),
        json={"isActiveRecently": True},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text


async def test_an_api_read_is_a_server_span_with_postgres_and_redis_children(
    exporter, traced_api, pool, redis, settings, tenant
):
    worker_id, _, _ = await management.create_worker(
        pool, redis, settings, tenant.org_id, "w", tenant.user_id
    )
    exporter.clear()

    assert (await traced_api.get("/v1/workers", headers=tenant.as_key)).status_code == 200
    r = await traced_api.get(f"/v1/workers/{worker_id}", headers=tenant.as_key)
    assert r.status_code == 200

    spans = exporter.get_finished_spans()
    for route, query in (("/v1/workers", "fetch_page"), ("/v1/workers/{id}", "fetch_worker")):
        (server,) = by_name(spans, f"GET {route}")
        assert server.kind is SpanKind.SERVER and server.parent is None
        assert server.attributes is not None
        assert server.attributes["http.response.status_code"] == 200
        children = [s for s in spans if parent_of(s) == server.context.span_id]
        assert sorted(s.name for s in children) == [f"postgres {query}", "redis HMGET"]
        assert all(s.kind is SpanKind.CLIENT for s in children)
        assert all(s.context.trace_id == server.context.trace_id for s in children)
    assert {s.resource.attributes["service.name"] for s in spans} == {"hb-test"}


async def test_a_flusher_drain_is_a_span_with_claim_write_and_ack_children(
    exporter, traced_api, pool, redis, settings, tenant
):
    worker_id, token, _ = await management.create_worker(
        pool, redis, settings, tenant.org_id, "w", tenant.user_id
    )
    async for ingest in client_for(create_ingest(settings)):
        await beat(ingest, worker_id, token)
    exporter.clear()
    ctx = {"settings": settings}
    await startup(ctx)
    try:
        assert await flush_dirty(ctx) == 1
    finally:
        await shutdown(ctx)

    spans = exporter.get_finished_spans()
    (drain,) = by_name(spans, "flush_dirty")
    assert drain.parent is None
    assert drain.attributes is not None and drain.attributes["hb.rows_written"] == 1
    children = [s for s in spans if parent_of(s) == drain.context.span_id]
    names = {s.name for s in children}
    assert {"redis claim_dirty", "postgres UPDATE workers", "redis HDEL"} <= names
    (claim, *_) = by_name(children, "redis claim_dirty")
    assert claim.attributes is not None and claim.attributes["hb.workers"] == 1
    assert all(s.context.trace_id == drain.context.trace_id for s in children)


async def test_sampled_beats_get_a_server_span_a_wait_and_the_redis_write(
    exporter, pool, redis, settings, tenant
):
    workers = [
        await management.create_worker(pool, redis, settings, tenant.org_id, f"w{n}")
        for n in range(5)
    ]
    every_beat = dataclasses.replace(settings, trace_sample_ratio=1.0)
    async for ingest in client_for(create_ingest(every_beat)):
        exporter.clear()
        await asyncio.gather(*(beat(ingest, w, t) for w, t, _ in workers))
        r = await ingest.post(
            KUBIYA,
            json={"worker_id": workers[0][0], "environment_name": "prod"},
            headers={"Authorization": f"Bearer {workers[0][1]}"},
        )
        assert r.status_code == 204

    spans = exporter.get_finished_spans()
    servers = by_name(spans, "POST /v1/workers/{id}/activity-heartbeat")
    servers += by_name(spans, "POST /api/v1/workers/heartbeat")
    assert len(servers) == 6
    assert all(s.kind is SpanKind.SERVER and s.parent is None for s in servers)
    assert {s.attributes["http.response.status_code"] for s in servers if s.attributes} == {
        200,
        204,
    }
    waits = by_name(spans, "group commit")
    assert sorted(parent_of(w) for w in waits) == sorted(s.context.span_id for s in servers)
    writes = by_name(spans, "redis EVALSHA record_heartbeats")
    assert writes and all(w.kind is SpanKind.CLIENT for w in writes)
    # Each write hangs under one sampled beat's wait and links the others it carried.
    carried = [parent_of(w) for w in writes] + [
        link.context.span_id for w in writes for link in w.links
    ]
    assert sorted(carried) == sorted(w.context.span_id for w in waits)
    assert sum(w.attributes["hb.batch.sampled"] for w in writes if w.attributes) == 6


async def test_at_ratio_zero_beats_make_no_span(exporter, pool, redis, settings, tenant):
    worker_id, token, _ = await management.create_worker(pool, redis, settings, tenant.org_id, "w")
    no_beat = dataclasses.replace(settings, trace_sample_ratio=0.0)
    async for ingest in client_for(create_ingest(no_beat)):
        exporter.clear()
        for _ in range(20):
            await beat(ingest, worker_id, token)
    assert exporter.get_finished_spans() == ()


async def test_with_tracing_off_no_span_object_is_made(
    monkeypatch, api, pool, redis, settings, tenant
):
    from opentelemetry.sdk.trace import Tracer
    from opentelemetry.trace import NonRecordingSpan

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a span was made while tracing is off")

    monkeypatch.setattr(Tracer, "start_span", refuse)
    monkeypatch.setattr(NonRecordingSpan, "__init__", refuse)
    assert tracing.active_tracer() is None
    worker_id, token, _ = await management.create_worker(
        pool, redis, settings, tenant.org_id, "w", tenant.user_id
    )
    app = create_ingest(settings)
    async for ingest in client_for(app):
        # The beat path is the untraced one: the routes and the committer as they are.
        assert isinstance(app, IngestApp) and isinstance(app._den, DenHeartbeatRoute)
        assert type(app.state.ingest.committer) is GroupCommitter
        await beat(ingest, worker_id, token)
    assert (await api.get("/v1/workers", headers=tenant.as_key)).status_code == 200
    ctx = {"settings": settings}
    await startup(ctx)
    try:
        assert await flush_dirty(ctx) == 1
    finally:
        await shutdown(ctx)
