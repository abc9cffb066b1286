"""JSON bodies for framework-level errors (unknown route, wrong method) and unexpected failures."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("hb.http")

_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _CODES.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": code, "message": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"error": "internal_error", "message": "An unexpected error occurred."}, status_code=500
    )


EXCEPTION_HANDLERS = {HTTPException: http_exception, Exception: unexpected}
