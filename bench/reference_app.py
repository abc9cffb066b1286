"""The reference for the ingest figure: bare Starlette answering 204 on the Den heartbeat route."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def heartbeat(request: Request) -> Response:
    return Response(status_code=204)


async def health(request: Request) -> Response:
    return Response(status_code=204)


app = Starlette(
    routes=[
        Route("/v1/workers/{id}/activity-heartbeat", heartbeat, methods=["POST"]),
        Route("/health", health),
    ]
)
