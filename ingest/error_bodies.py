"""Error bodies of the two contracts, encoded once where they never change."""

from __future__ import annotations

from shared.contract.wire import encoder

UNAVAILABLE_MESSAGE = "The heartbeat store is unavailable; the beat was not recorded. Retry later."


def den_invalid(message: str, path: list[str | int]) -> bytes:
    return encoder.encode(
        {"error": "invalid_request", "details": [{"message": message, "path": path}]}
    )


DEN_UNAUTHORIZED = encoder.encode({"error": "unauthorized"})
DEN_NOT_FOUND = encoder.encode({"error": "worker_not_found", "message": "Worker not found."})
DEN_UNAVAILABLE = encoder.encode({"error": "unavailable", "message": UNAVAILABLE_MESSAGE})
DEN_TOO_LARGE = encoder.encode(
    {"error": "payload_too_large", "message": "The request body is too large."}
)


def kubiya_invalid(loc: list[str | int], msg: str, kind: str) -> bytes:
    return encoder.encode({"detail": [{"loc": loc, "msg": msg, "type": kind}]})


KUBIYA_UNAUTHORIZED = encoder.encode({"detail": "Invalid or missing credentials."})
KUBIYA_NOT_FOUND = encoder.encode({"detail": "Worker not found."})
KUBIYA_UNAVAILABLE = encoder.encode({"detail": UNAVAILABLE_MESSAGE})
KUBIYA_TOO_LARGE = encoder.encode({"detail": "The request body is too large."})
