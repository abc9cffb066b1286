"""The read and management API: `uvicorn api.app:app`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api import (
    api_keys,
    error_responses,
    events_read,
    fleet_summary,
    metrics,
    sessions,
    webhooks,
    workers_manage,
    workers_read,
)
from api.fleet_page import fleet_routes
from api.openapi_routes import api_document
from api.state import ApiState
from shared.logs import RequestIdMiddleware
from shared.postgres.pool import POSTGRES_DOWN
from shared.redis.connect import REDIS_DOWN
from shared.settings import Settings, load_settings
from shared.tracing import TracingMiddleware, start_tracing, stop_tracing
from shared.web.docs import docs_routes
from shared.web.exception_handlers import EXCEPTION_HANDLERS
from shared.web.openapi import openapi_endpoint

# A readiness probe is answered well within the usual probe timeouts, even by a hung Postgres.
READY_TIMEOUT = 2.0


def create_app(settings: Settings | None = None) -> Starlette:
    state = ApiState()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loaded = settings or load_settings()
        traced = start_tracing(loaded, "hb-api")
        await state.start(loaded)
        app.state.api = state
        try:
            yield
        finally:
            await state.stop()
            if traced:
                stop_tracing()

    async def postgres_down(request: Request, exc: Exception) -> Response:
        return error_responses.postgres_unavailable(state.settings.retry_after)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        # Ready while Postgres answers: without Redis the reads still serve durable data (and
        # say so), and the writes land in Postgres. A probe that took every API pod out of
        # service during a Redis outage would turn a degraded read path into none.
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await state.pool.fetchval("SELECT 1")
        except POSTGRES_DOWN:
            return JSONResponse(
                {"status": "unavailable", "message": "Postgres is unreachable."},
                status_code=503,
                headers={"Retry-After": str(state.settings.retry_after)},
            )
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await state.redis.ping()
        except (*REDIS_DOWN, TimeoutError):
            message = "Redis is unreachable: reads serve durable data (X-Heartbeat-Data)."
            return JSONResponse({"status": "degraded", "message": message})
        return JSONResponse({"status": "ready"})

    routes = [
        Route("/v1/workers", workers_read.list_workers, methods=["GET"]),
        Route("/v1/workers", workers_manage.create_worker, methods=["POST"]),
        # Before `/v1/workers/{id}`, which would take "summary" for a (malformed) id.
        Route("/v1/workers/summary", fleet_summary.worker_summary, methods=["GET"]),
        Route("/v1/workers/{id}", workers_read.get_worker, methods=["GET"]),
        Route("/v1/workers/{id}", workers_manage.delete_worker, methods=["DELETE"]),
        Route(
            "/v1/workers/{id}/heartbeat-token",
            workers_manage.rotate_heartbeat_token,
            methods=["POST"],
        ),
        Route("/v1/events", events_read.list_events, methods=["GET"]),
        Route("/v1/events/stream", events_read.stream_events, methods=["GET"]),
        Route("/v1/webhooks", webhooks.create_webhook, methods=["POST"]),
        Route("/v1/webhooks", webhooks.list_webhooks, methods=["GET"]),
        Route("/v1/webhooks/{id}", webhooks.delete_webhook, methods=["DELETE"]),
        Route("/v1/webhooks/{id}/deliveries", webhooks.list_deliveries, methods=["GET"]),
        Route("/v1/api-keys", api_keys.list_api_keys, methods=["GET"]),
        Route("/v1/api-keys", api_keys.create_api_key, methods=["POST"]),
        Route("/v1/api-keys/{id}", api_keys.revoke_api_key, methods=["DELETE"]),
        Route("/v1/session", sessions.end_session, methods=["DELETE"]),
        Route("/health", health),
        Route("/ready", ready),
        Route("/metrics", metrics.metrics_endpoint),
        Route("/openapi.json", openapi_endpoint(api_document)),
        *docs_routes("Heartbeat API"),
        *fleet_routes(),  # the fleet page at / (not in the OpenAPI document)
    ]
    handlers: dict[Any, Any] = {**EXCEPTION_HANDLERS}
    handlers.update(dict.fromkeys(POSTGRES_DOWN, postgres_down))
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=handlers,
        middleware=[Middleware(TracingMiddleware), Middleware(RequestIdMiddleware)],
    )


app = create_app()
