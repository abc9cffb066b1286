"""The references for the ingest and read figures: bare Starlette answering 204 on the Den
heartbeat route, and the worker list's page (from the file `HB_BENCH_PAGE_FILE` names, read once)
on `GET /v1/workers`, each with no work behind it."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def heartbeat(request: Request) -> Response:
    return Response(status_code=204)


_PAGE_FILE = os.environ.get("HB_BENCH_PAGE_FILE")
PAGE = Path(_PAGE_FILE).read_bytes() if _PAGE_FILE else b'{"workers": []}'


async def workers(request: Request) -> Response:
    return Response(PAGE, media_type="application/json")


async def health(request: Request) -> Response:
    return Response(status_code=204)


app = Starlette(
    routes=[
        Route("/v1/workers/{id}/activity-heartbeat", heartbeat, methods=["POST"]),
        Route("/v1/workers", workers),
        Route("/health", health),
    ]
)
