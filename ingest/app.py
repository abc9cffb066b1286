"""The ingest service: `uvicorn ingest.app:app`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingest.den_route import DenHeartbeatRoute
from ingest.kubiya_route import KubiyaHeartbeatRoute
from ingest.state import IngestState
from shared import metrics
from shared.http_errors import EXCEPTION_HANDLERS
from shared.redis_conn import REDIS_DOWN, connect_redis
from shared.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Starlette:
    state = IngestState()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loaded = settings or load_settings()
        redis = connect_redis(loaded)
        state.start(loaded, redis)
        app.state.ingest = state
        try:
            yield
        finally:
            await state.committer.drain()
            await redis.aclose()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        try:
            await state.redis.ping()
        except REDIS_DOWN:
            return JSONResponse(
                {"status": "unavailable", "message": "Redis is unreachable."},
                status_code=503,
                headers={"Retry-After": str(state.settings.retry_after)},
            )
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(request: Request) -> Response:
        m = state.metrics
        body = metrics.render([m.beats_accepted, m.beats_rejected, m.batch_size, m.redis_latency])
        return Response(body, media_type=metrics.CONTENT_TYPE)

    routes = [
        Route("/v1/workers/{id}/activity-heartbeat", DenHeartbeatRoute(state), methods=["POST"]),
        Route("/api/v1/workers/heartbeat", KubiyaHeartbeatRoute(state), methods=["POST"]),
        Route("/health", health),
        Route("/ready", ready),
        Route("/metrics", metrics_endpoint),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )


app = create_app()
