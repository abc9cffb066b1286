"""Error bodies of the two contracts, encoded once where they never change."""

from __future__ import annotations

from collections.abc import Sequence

from shared.contract.wire import (
    Error,
    ErrorDetail,
    HTTPValidationError,
    InvalidRequestError,
    KubiyaError,
    NotFoundError,
    UnauthorizedError,
    ValidationError,
    encoder,
)

UNAVAILABLE_MESSAGE = "The heartbeat store is unavailable; the beat was not recorded. Retry later."
TOO_LARGE_MESSAGE = "The request body is too large."


def den_invalid(message: str, path: Sequence[str | float]) -> bytes:
    detail = ErrorDetail(message, list(path))
    return encoder.encode(InvalidRequestError("invalid_request", [detail]))


DEN_UNAUTHORIZED = encoder.encode(UnauthorizedError("unauthorized"))
DEN_NOT_FOUND = encoder.encode(NotFoundError("worker_not_found", "Worker not found."))
DEN_UNAVAILABLE = encoder.encode(Error("unavailable", UNAVAILABLE_MESSAGE))
DEN_TOO_LARGE = encoder.encode(Error("payload_too_large", TOO_LARGE_MESSAGE))


def kubiya_invalid(loc: list[str | int], msg: str, kind: str) -> bytes:
    return encoder.encode(HTTPValidationError([ValidationError(loc, msg, kind)]))


KUBIYA_UNAUTHORIZED = encoder.encode(KubiyaError("Invalid or missing credentials."))
KUBIYA_NOT_FOUND = encoder.encode(KubiyaError("Worker not found."))
KUBIYA_UNAVAILABLE = encoder.encode(KubiyaError(UNAVAILABLE_MESSAGE))
KUBIYA_TOO_LARGE = encoder.encode(KubiyaError(TOO_LARGE_MESSAGE))
