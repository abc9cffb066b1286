"""Error responses of the API, in Den's shapes (the Structs of `shared.contract.wire`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from starlette.responses import Response

from shared.contract.wire import (
    Error,
    ErrorDetail,
    InvalidRequestError,
    NotFoundError,
    UnauthorizedError,
    encoder,
    error_location,
)

ID_MESSAGE = "Expected a Den TypeID with '{prefix}_' prefix and a 26-character base32 suffix."


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(encoder.encode(body), status, headers, media_type="application/json")


def invalid(message: str, path: Sequence[str | float]) -> Response:
    return _json(InvalidRequestError("invalid_request", [ErrorDetail(message, list(path))]), 400)


def invalid_id(prefix: str) -> Response:
    return invalid(ID_MESSAGE.format(prefix=prefix), ["id"])


def invalid_body(exc: msgspec.ValidationError | msgspec.DecodeError) -> Response:
    if isinstance(exc, msgspec.ValidationError):
        message, path = error_location(exc)
        return invalid(message, path)
    return invalid("The request body is not valid JSON.", [])


def unauthorized() -> Response:
    return _json(UnauthorizedError("unauthorized"), 401)


def forbidden(message: str) -> Response:
    return _json(Error("forbidden", message), 403)


def quota_exceeded(message: str) -> Response:
    return _json(Error("quota_exceeded", message), 403)


def not_found(error: str, message: str) -> Response:
    return _json(NotFoundError(error, message), 404)


def worker_not_found() -> Response:
    return not_found("worker_not_found", "Worker not found.")


def postgres_unavailable(retry_after: int) -> Response:
    body = Error("unavailable", "The database is unavailable. Retry later.")
    return _json(body, 503, {"Retry-After": str(retry_after)})


def redis_unavailable(retry_after: int) -> Response:
    body = Error("unavailable", "The heartbeat store is unavailable. Retry later.")
    return _json(body, 503, {"Retry-After": str(retry_after)})
