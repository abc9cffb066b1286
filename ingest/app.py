"""The ingest service: `uvicorn ingest.app:app`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest.asgi_io import send_response
from ingest.den_route import DenHeartbeatRoute
from ingest.kubiya_route import KubiyaHeartbeatRoute
from ingest.kubiya_worker_route import KubiyaDisconnectRoute, KubiyaWorkerHeartbeatRoute
from ingest.openapi_routes import ingest_document
from ingest.state import IngestState
from ingest.traced import SampledRoute, TracedGroupCommitter
from shared.contract import keys
from shared.contract.wire import encoder
from shared.redis.connect import REDIS_DOWN, connect_redis
from shared.settings import Settings, load_settings
from shared.tracing import active_tracer, start_tracing, stop_tracing
from shared.web.docs import docs_routes
from shared.web.exception_handlers import EXCEPTION_HANDLERS
from shared.web.metrics import CONTENT_TYPE
from shared.web.openapi import openapi_endpoint

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger("hb.ingest")

DEN_PREFIX, DEN_SUFFIX = "/v1/workers/", "/activity-heartbeat"
DEN_ROUTE = DEN_PREFIX + "{id}" + DEN_SUFFIX
KUBIYA_PATH = "/api/v1/workers/heartbeat"
KUBIYA_PREFIX = "/api/v1/workers/"
KUBIYA_WORKER_ROUTE = KUBIYA_PREFIX + "{worker_id}/heartbeat"
KUBIYA_DISCONNECT_ROUTE = KUBIYA_PREFIX + "{worker_id}/disconnect"
INTERNAL_ERROR = encoder.encode(
    {"error": "internal_error", "message": "An unexpected error occurred."}
)


class IngestApp(Starlette):
    """Starlette, with the heartbeat routes dispatched before its middleware and router.

    Measured: skipping the error middleware and the route table for beats is worth ~10% of
    throughput. The routes answer every error themselves; anything else still goes to Starlette.
    """

    def __init__(
        self,
        den: ASGIApp,
        kubiya: ASGIApp,
        kubiya_worker: ASGIApp,
        kubiya_disconnect: ASGIApp,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._den = den
        self._kubiya = kubiya
        self._kubiya_worker = kubiya_worker
        self._kubiya_disconnect = kubiya_disconnect
        self._per_worker = {"heartbeat": kubiya_worker, "disconnect": kubiya_disconnect}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            if path.startswith(DEN_PREFIX) and path.endswith(DEN_SUFFIX):
                worker_id = path[len(DEN_PREFIX) : -len(DEN_SUFFIX)]
                if worker_id and "/" not in worker_id:
                    scope["path_params"] = {"id": worker_id}
                    return await _guarded(self._den, scope, receive, send)
            elif path.startswith(KUBIYA_PREFIX):
                if path == KUBIYA_PATH:
                    return await _guarded(self._kubiya, scope, receive, send)
                worker_id, _, action = path[len(KUBIYA_PREFIX) :].partition("/")
                if worker_id and action in self._per_worker:
                    scope["path_params"] = {"worker_id": worker_id}
                    return await _guarded(self._per_worker[action], scope, receive, send)
        await super().__call__(scope, receive, send)

    def sample_beats(self, ratio: float, tracer: Tracer) -> None:
        """Trace a `ratio` share of beats. Called only while tracing is on, so that with it off
        the beat routes stay exactly as they are."""
        sampled: dict[object, ASGIApp] = {
            self._den: SampledRoute(self._den, DEN_ROUTE, ratio, tracer),
            self._kubiya: SampledRoute(self._kubiya, KUBIYA_PATH, ratio, tracer),
            self._kubiya_worker: SampledRoute(
                self._kubiya_worker, KUBIYA_WORKER_ROUTE, ratio, tracer
            ),
            self._kubiya_disconnect: SampledRoute(
                self._kubiya_disconnect, KUBIYA_DISCONNECT_ROUTE, ratio, tracer
            ),
        }
        self._den, self._kubiya = sampled[self._den], sampled[self._kubiya]
        self._kubiya_worker = sampled[self._kubiya_worker]
        self._kubiya_disconnect = sampled[self._kubiya_disconnect]
        self._per_worker = {"heartbeat": self._kubiya_worker, "disconnect": self._kubiya_disconnect}
        for route in self.routes:  # beats under a root path come through the router
            if isinstance(route, Route) and route.app in sampled:
                route.app = sampled[route.app]


async def _guarded(route: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        await route(scope, receive, send)
    except Exception:
        log.exception("unhandled error on POST %s", scope["path"])
        with contextlib.suppress(Exception):  # the response may already have started
            await send_response(send, 500, INTERNAL_ERROR)


def create_app(settings: Settings | None = None) -> Starlette:
    state = IngestState()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loaded = settings or load_settings()
        traced = start_tracing(loaded, "hb-ingest")
        redis = connect_redis(loaded)
        tracer = active_tracer()  # also on when a test or a bench started tracing itself
        if tracer is None:
            state.start(loaded, redis)
        else:
            assert isinstance(app, IngestApp)
            state.start(loaded, redis, functools.partial(TracedGroupCommitter, tracer=tracer))
            app.sample_beats(loaded.trace_sample_ratio, tracer)
        app.state.ingest = state
        publisher = asyncio.create_task(state.metrics.publish_forever())
        try:
            yield
        finally:
            publisher.cancel()
            await state.committer.drain()
            state.pipe.close()
            await redis.aclose()
            if traced:
                stop_tracing()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        try:
            synced = await state.redis.exists(keys.REGISTRY_SYNCED)
        except REDIS_DOWN:
            problem = "Redis is unreachable."
        else:
            if synced:
                return JSONResponse({"status": "ready"})
            problem = "The worker registry is being rebuilt from Postgres."
        return JSONResponse(
            {"status": "unavailable", "message": problem},
            status_code=503,
            headers={"Retry-After": str(state.settings.retry_after)},
        )

    async def metrics_endpoint(request: Request) -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    den, kubiya = DenHeartbeatRoute(state), KubiyaHeartbeatRoute(state)
    kubiya_worker = KubiyaWorkerHeartbeatRoute(state)
    kubiya_disconnect = KubiyaDisconnectRoute(state)
    routes = [
        Route(DEN_ROUTE, den, methods=["POST"]),
        Route(KUBIYA_PATH, kubiya, methods=["POST"]),
        Route(KUBIYA_WORKER_ROUTE, kubiya_worker, methods=["POST"]),
        Route(KUBIYA_DISCONNECT_ROUTE, kubiya_disconnect, methods=["POST"]),
        Route("/health", health),
        Route("/ready", ready),
        Route("/metrics", metrics_endpoint),
        Route("/openapi.json", openapi_endpoint(ingest_document)),
        *docs_routes("Heartbeat ingest"),
    ]
    return IngestApp(
        den,
        kubiya,
        kubiya_worker,
        kubiya_disconnect,
        routes=routes,
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )


app = create_app()
