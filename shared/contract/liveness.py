"""Liveness of a worker, derived when read from the server's clock and its last heartbeat."""

from __future__ import annotations

from enum import StrEnum


class Liveness(StrEnum):
    ONLINE = "online"
    STALE = "stale"  # missed beats, still inside the grace
    OFFLINE = "offline"
    NEVER = "never"  # no heartbeat yet


def liveness_of(
    last_heartbeat_ms: int | None,
    now_ms: int,
    stale_after: float,
    offline_after: float,
    disconnected_ms: int | None = None,
) -> Liveness:
    """`stale_after` and `offline_after` are seconds since the last heartbeat; a heartbeat ahead
    of `now_ms` (another replica's clock) counts as just now. A worker that said it disconnected
    at or after its last heartbeat is offline at once."""
    if disconnected_ms is not None and (
        last_heartbeat_ms is None or disconnected_ms >= last_heartbeat_ms
    ):
        return Liveness.OFFLINE
    if last_heartbeat_ms is None:
        return Liveness.NEVER
    age_ms = now_ms - last_heartbeat_ms
    if age_ms < stale_after * 1000:
        return Liveness.ONLINE
    if age_ms < offline_after * 1000:
        return Liveness.STALE
    return Liveness.OFFLINE
