"""JSON bodies for framework-level errors (unknown route, wrong method) and unexpected failures."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

log = logging.getLogger("hb.http")

_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _CODES.get(exc.status_code, "http_error")
    headers = exc.headers
    allow = allowed_methods(request) if exc.status_code == 405 else ""
    if allow:
        headers = {**(headers or {}), "Allow": allow}
    return JSONResponse(
        {"error": code, "message": exc.detail}, status_code=exc.status_code, headers=headers
    )


def allowed_methods(request: Request) -> str:
    """Every method routed on the request's path. Starlette's router hands a wrong method to the
    first route whose path matches, which offers only its own methods (GET, say, when POST is
    routed on the same path too)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return ", ".join(sorted(methods))


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"error": "internal_error", "message": "An unexpected error occurred."}, status_code=500
    )


EXCEPTION_HANDLERS = {HTTPException: http_exception, Exception: unexpected}
