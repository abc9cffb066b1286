"""shared/tracing.py on its own: off by default and free of OpenTelemetry, spans when started,
the settings that turn it on, and the API middleware's server spans."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from shared import tracing
from shared.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    assert tracing.start_tracing(Settings(), "hb-test", exporter=spans)
    yield spans
    tracing.stop_tracing()


def test_off_by_default_and_span_is_one_shared_no_op():
    assert Settings().tracing == "off"
    assert tracing.start_tracing(Settings(), "hb-test") is False
    assert tracing.active_tracer() is None
    first = tracing.span("a", {"k": 1}, store="redis")
    assert first is tracing.span("b") is tracing.NO_SPAN  # nothing allocated per call
    with first as entered:
        entered.set_attribute("ignored", 1)


async def test_traced_calls_through_while_off():
    @tracing.traced("double")
    async def double(x: int) -> int:
        return 2 * x

    assert await double(21) == 42


def test_the_services_run_without_opentelemetry_installed():
    """With the packages unimportable: the services import, tracing stays off, and asking for
    it fails at start, naming the setting and the extra."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # any import of it now fails
        import api.app, flusher.worker, ingest.app
        from shared import tracing
        from shared.settings import Settings, SettingsError, load_settings
        assert tracing.start_tracing(Settings(), "x") is False
        assert tracing.span("x") is tracing.NO_SPAN
        try:
            load_settings({"HB_TRACING": "otlp"}, require_token_keys=False)
        except SettingsError as exc:
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "HB_TRACING=otlp" in out.stdout
    assert "heartbeat-control-plane[tracing]" in out.stdout


def test_settings_name_the_mode_and_the_ratio():
    env = {"HB_TRACING": " OTLP ", "HB_TRACE_SAMPLE_RATIO": "0.25"}
    settings = load_settings(env, require_token_keys=False)
    assert (settings.tracing, settings.trace_sample_ratio) == ("otlp", 0.25)
    assert load_settings({"HB_TRACE_SAMPLE_RATIO": "0"}, require_token_keys=False).tracing == "off"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("HB_TRACING", "jaeger"),
        ("HB_TRACING", ""),
        ("HB_TRACE_SAMPLE_RATIO", "1.5"),
        ("HB_TRACE_SAMPLE_RATIO", "-0.1"),
        ("HB_TRACE_SAMPLE_RATIO", "nan"),
        ("HB_TRACE_SAMPLE_RATIO", "half"),
    ],
)
def test_malformed_tracing_settings_are_refused_by_name(name, raw):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: raw}, require_token_keys=False)


def test_spans_nest_and_store_spans_are_client_spans(exporter):
    with tracing.span("outer", {"hb.n": 3}) as outer:
        outer.set_attribute("hb.later", True)
        with tracing.span("HMGET", {"hb.workers": 2}, store="redis"):
            pass
    inner, parent = exporter.get_finished_spans()
    assert parent.name == "outer"
    assert dict(parent.attributes or {}) == {"hb.n": 3, "hb.later": True}
    assert parent.resource.attributes["service.name"] == "hb-test"
    assert inner.name == "redis HMGET"
    assert inner.kind is SpanKind.CLIENT
    assert inner.parent is not None and inner.parent.span_id == parent.context.span_id
    assert dict(inner.attributes or {}) == {
        "db.system.name": "redis",
        "db.operation.name": "HMGET",
        "hb.workers": 2,
    }


async def test_an_exception_is_recorded_on_the_span_it_leaves(exporter):
    @tracing.traced("UPDATE workers", store="postgres")
    async def fail() -> None:
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        await fail()
    (failed,) = exporter.get_finished_spans()
    assert failed.name == "postgres UPDATE workers"
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]


def test_otel_service_name_wins_over_the_default(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "hb-ingest-eu")
    spans = InMemorySpanExporter()
    tracing.start_tracing(Settings(), "hb-ingest", exporter=spans)
    try:
        with tracing.span("x"):
            pass
    finally:
        tracing.stop_tracing()
    assert spans.get_finished_spans()[0].resource.attributes["service.name"] == "hb-ingest-eu"
    assert tracing.active_tracer() is None


async def item(request: Request) -> Response:
    with tracing.span("lookup"):
        status = 500 if request.path_params["id"] == "boom" else 200
    return PlainTextResponse("ok", status_code=status)


def small_app() -> Starlette:
    return Starlette(
        routes=[Route("/items/{id}", item)], middleware=[Middleware(tracing.TracingMiddleware)]
    )


async def test_middleware_names_the_server_span_by_route_and_continues_a_trace(exporter):
    parent_trace = "0af7651916cd43dd8448eb211c80319c"
    transport = httpx.ASGITransport(app=small_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get(
            "/items/42", headers={"traceparent": f"00-{parent_trace}-b7ad6b7169203331-01"}
        )
        assert r.status_code == 200
        assert (await client.get("/items/boom")).status_code == 500
        assert (await client.get("/nowhere")).status_code == 404
    lookup, ok, _, failed, missing = exporter.get_finished_spans()
    assert ok.name == "GET /items/{id}"
    assert ok.kind is SpanKind.SERVER
    assert format(ok.context.trace_id, "032x") == parent_trace
    assert ok.attributes is not None
    assert ok.attributes["http.route"] == "/items/{id}"
    assert ok.attributes["url.path"] == "/items/42"
    assert ok.attributes["http.response.status_code"] == 200
    assert lookup.parent is not None and lookup.parent.span_id == ok.context.span_id
    assert failed.status.status_code is StatusCode.ERROR
    assert missing.name == "GET"  # no route matched: the method alone
    assert missing.attributes is not None
    assert missing.attributes["http.response.status_code"] == 404


async def test_middleware_passes_requests_through_while_off():
    transport = httpx.ASGITransport(app=small_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/items/1")).text == "ok"
