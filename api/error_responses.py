"""Error responses of the API, in Den's shapes."""

from __future__ import annotations

import msgspec
from starlette.responses import JSONResponse

from shared.contract.wire import error_location

ID_MESSAGE = "Expected a Den TypeID with '{prefix}_' prefix and a 26-character base32 suffix."


def invalid(message: str, path: list[str | int]) -> JSONResponse:
    return JSONResponse(
        {"error": "invalid_request", "details": [{"message": message, "path": path}]},
        status_code=400,
    )


def invalid_id(prefix: str) -> JSONResponse:
    return invalid(ID_MESSAGE.format(prefix=prefix), ["id"])


def invalid_body(exc: msgspec.ValidationError | msgspec.DecodeError) -> JSONResponse:
    if isinstance(exc, msgspec.ValidationError):
        message, path = error_location(exc)
        return invalid(message, path)
    return invalid("The request body is not valid JSON.", [])


def unauthorized() -> JSONResponse:
    return JSONResponse({"error": "unauthorized"}, status_code=401)


def forbidden(message: str) -> JSONResponse:
    return JSONResponse({"error": "forbidden", "message": message}, status_code=403)


def not_found(error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=404)


def worker_not_found() -> JSONResponse:
    return not_found("worker_not_found", "Worker not found.")


def postgres_unavailable(retry_after: int) -> JSONResponse:
    return JSONResponse(
        {"error": "unavailable", "message": "The database is unavailable. Retry later."},
        status_code=503,
        headers={"Retry-After": str(retry_after)},
    )
