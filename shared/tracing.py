"""OpenTelemetry tracing, off unless `HB_TRACING` names where spans go.

The OpenTelemetry packages are an optional extra (`tracing`), imported only once a service
starts tracing. While tracing is off, `span()` hands back one shared do-nothing object (no
allocation), the middleware passes requests straight through, and ingest's per-beat path runs
no tracing code at all (its hooks are installed only when tracing is on: see ingest/traced.py).

Each process keeps its own tracer provider rather than OpenTelemetry's global one: that can be
set only once per process, and tests start and stop tracing many times.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

    from shared.settings import Settings

AttributeValue = str | bool | int | float
T = TypeVar("T")

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_otel: _Otel | None = None


class _Otel:
    """The OpenTelemetry names used per span, imported once when tracing starts."""

    def __init__(self) -> None:
        from opentelemetry.propagate import extract
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.client, self.server = SpanKind.CLIENT, SpanKind.SERVER
        self.extract = extract
        self.error = Status(StatusCode.ERROR)


class SpanLike(Protocol):
    """What entering `span()` gives: an OpenTelemetry span, or `NO_SPAN`."""

    def set_attribute(self, key: str, value: AttributeValue) -> None: ...


class _NoSpan:
    """What `span()` gives while tracing is off: enters, records and leaves doing nothing."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        return None


NO_SPAN = _NoSpan()


def start_tracing(
    settings: Settings, service_name: str, *, exporter: SpanExporter | None = None
) -> bool:
    """Trace this process to where `settings.tracing` says, or to `exporter` (tests, benches),
    whose spans then leave as each one ends. False, with nothing imported, while it is off.

    The service name is `service_name` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`
    name one. Every span whose parent is unknown is recorded (ingest samples beats itself, see
    `HB_TRACE_SAMPLE_RATIO`), and an incoming parent's decision is kept; `OTEL_TRACES_SAMPLER`,
    when set, replaces that."""
    global _tracer, _provider, _otel
    if exporter is None and settings.tracing == "off":
        return False
    import os

    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    sampler = None if os.environ.get("OTEL_TRACES_SAMPLER") else ParentBased(ALWAYS_ON)
    provider = TracerProvider(resource=resource, sampler=sampler)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:  # spans are exported from a background thread, in batches
        provider.add_span_processor(BatchSpanProcessor(_exporter(settings.tracing)))
    stop_tracing()
    _otel = _Otel()
    _provider = provider
    _tracer = provider.get_tracer("heartbeat-control-plane")
    return True


def _exporter(mode: str) -> SpanExporter:
    if mode == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    # Endpoint, headers, timeout and compression come from the standard OTEL_EXPORTER_OTLP_*
    # variables (default http://localhost:4318/v1/traces).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def stop_tracing() -> None:
    """Export what is still buffered and stop tracing (at shutdown)."""
    global _tracer, _provider, _otel
    provider, _tracer, _provider, _otel = _provider, None, None, None
    if provider is not None:
        provider.shutdown()


def active_tracer() -> Tracer | None:
    """The tracer while tracing is on, else None."""
    return _tracer


def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None, *, store: str | None = None
) -> AbstractContextManager[SpanLike]:
    """A context manager: a child span of the current one named `name`, or, while tracing is
    off, `NO_SPAN`. `store` ("redis", "postgres") makes it a client span of that database.
    Entering it gives something with `set_attribute`; an exception leaving it is recorded."""
    tracer, otel = _tracer, _otel
    if tracer is None or otel is None:
        return NO_SPAN
    if store is None:
        return tracer.start_as_current_span(name, attributes=attributes)
    return tracer.start_as_current_span(
        f"{store} {name}",
        kind=otel.client,
        attributes={"db.system.name": store, "db.operation.name": name, **(attributes or {})},
    )


def traced(
    name: str, *, store: str | None = None
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """`span(name, store=store)` around every call of a coroutine function (for calls made a
    few times a second: it adds a frame even while tracing is off)."""

    def decorate(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> T:
            if _tracer is None:
                return await fn(*args, **kwargs)
            with span(name, store=store):
                return await fn(*args, **kwargs)

        return call

    return decorate


class TracingMiddleware:
    """A server span per HTTP request, named `METHOD /route/{template}`, continuing the trace of
    an incoming `traceparent` header (W3C trace context). Passes requests through untouched
    while tracing is off."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: dict[tuple[object, str], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer, otel = _tracer, _otel
        if tracer is None or otel is None or scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method: str = scope["method"]
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            "url.path": scope["path"],
        }
        with tracer.start_as_current_span(
            method, context=otel.extract(headers), kind=otel.server, attributes=attributes
        ) as server_span:

            async def send_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    server_span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        server_span.set_status(otel.error)
                await send(message)

            try:
                await self.app(scope, receive, send_status)
            finally:
                # The router has matched by now: name the span by route, not by path (ids in
                # paths would make every request's name different).
                template = self._template(scope)
                if template is not None:
                    server_span.set_attribute("http.route", template)
                    server_span.update_name(f"{method} {template}")

    def _template(self, scope: Scope) -> str | None:
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return None
        key = (endpoint, scope["method"])
        template = self._templates.get(key)
        if template is None:
            app = scope.get("app")
            for route in getattr(app, "routes", ()):
                if getattr(route, "endpoint", None) is endpoint and scope["method"] in (
                    getattr(route, "methods", None) or ()
                ):
                    template = self._templates[key] = str(route.path)
                    break
        return template
