"""What a worker reports, and the JSON bodies the ingest routes expect.

The state classes check their values when they are built: ingest refuses a bad body with a
400 or 422 and the heartbeater then stops for good, so a mistake is better caught in the
worker's own callback, with a traceback pointing at it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# openSessionCount must stay exact in JSON numbers (Den's contract bound).
MAX_SESSION_COUNT = 2**53 - 1
# tasks_processed is stored in a signed 64-bit column; ingest refuses more.
MAX_TASKS_PROCESSED = 2**63 - 1
# The recent log lines ingest keeps per worker (Kubiya's per-worker route): older ones are dropped.
MAX_LOG_LINES = 100
# A disconnect's error message is cut to this many characters.
MAX_ERROR_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class DenState:
    """What a worker says about itself on Den's route.

    `last_activity_at` must be timezone-aware: a naive datetime is ambiguous, and guessing its
    zone wrongly would move the worker's activity by hours.
    """

    is_active_recently: bool
    open_session_count: int | None = None
    last_activity_at: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.is_active_recently, bool):
            raise TypeError("is_active_recently must be a bool")
        count = self.open_session_count
        if count is not None and (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 0 <= count <= MAX_SESSION_COUNT
        ):
            raise ValueError(f"open_session_count must be an int in [0, 2**53), got {count!r}")
        if self.last_activity_at is not None:
            format_timestamp(self.last_activity_at)  # rejects naive datetimes early


@dataclass(frozen=True, slots=True)
class KubiyaState:
    """What a worker says about itself on Kubiya's route (its defaults are Kubiya's)."""

    status: str = "active"
    tasks_processed: int = 0
    current_task_id: str | None = None
    worker_metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_text("status", self.status)
        if self.current_task_id is not None:
            _check_text("current_task_id", self.current_task_id)
        count = self.tasks_processed
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 0 <= count <= MAX_TASKS_PROCESSED
        ):
            raise ValueError(f"tasks_processed must be an int in [0, 2**63), got {count!r}")
        if not isinstance(self.worker_metadata, Mapping):
            raise TypeError("worker_metadata must be a mapping")


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and `Z`, the form ingest answers in."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware (e.g. datetime.now(UTC))")
    utc = moment.astimezone(UTC)
    # Field by field: strftime does not zero-pad years below 1000 everywhere.
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def den_body(state: DenState, sent_at: datetime) -> dict[str, Any]:
    """The body of `POST /v1/workers/{id}/activity-heartbeat`.

    Optional fields that are unknown are left out rather than sent as null, so a worker that
    does not track sessions never overwrites a count some other reporter set.
    """
    body: dict[str, Any] = {
        "isActiveRecently": state.is_active_recently,
        "sentAt": format_timestamp(sent_at),
    }
    if state.open_session_count is not None:
        body["openSessionCount"] = state.open_session_count
    if state.last_activity_at is not None:
        body["lastActivityAt"] = format_timestamp(state.last_activity_at)
    return body


def kubiya_body(state: KubiyaState, worker_id: str, environment_name: str) -> dict[str, Any]:
    """The body of `POST /api/v1/workers/heartbeat`: every field, as Kubiya's agents send it."""
    return {
        "worker_id": worker_id,
        "environment_name": environment_name,
        "status": state.status,
        "tasks_processed": state.tasks_processed,
        "current_task_id": state.current_task_id,
        "worker_metadata": dict(state.worker_metadata),
    }


def kubiya_worker_body(
    state: KubiyaState, system_info: Mapping[str, Any] | None, logs: Sequence[str]
) -> dict[str, Any]:
    """The body of `POST /api/v1/workers/{worker_id}/heartbeat`: the status fields, and on a
    full beat the host's `system_info` and the log lines since the last full beat."""
    body: dict[str, Any] = {
        "status": state.status,
        "tasks_processed": state.tasks_processed,
        "current_task_id": state.current_task_id,
        "worker_metadata": dict(state.worker_metadata),
    }
    if system_info is not None:
        body["system_info"] = dict(system_info)
    if logs:
        body["logs"] = list(logs)
    return body


def disconnect_body(error: BaseException | None) -> dict[str, Any]:
    """The body of `POST /api/v1/workers/{worker_id}/disconnect`: a shutdown, or the error that
    ended the worker's work (its type and message)."""
    if error is None:
        return {"reason": "shutdown"}
    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return {"reason": "error", "error_message": message[:MAX_ERROR_MESSAGE].replace("\x00", "")}


def check_system_info(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"system_info must return a mapping, got {type(value).__name__}")
    return value


def check_log_lines(value: object) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"logs must return a sequence of str, got {type(value).__name__}")
    for line in value:
        if not isinstance(line, str):
            raise TypeError(f"each log line must be a str, got {type(line).__name__}")
    return list(value)


def _check_text(name: str, value: object) -> None:
    # Postgres text cannot hold NUL, so ingest refuses it; say so here, where it came from.
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")
