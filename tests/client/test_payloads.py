"""The reported state, checked where it is built, and the bodies each route expects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from heartbeat_client import DenState, KubiyaState, Outcome, classify, format_timestamp
from heartbeat_client.payloads import den_body, kubiya_body

from .fakes import NOW, NOW_TEXT


def test_timestamps_are_rfc3339_utc_with_milliseconds_and_z() -> None:
    assert format_timestamp(NOW) == NOW_TEXT
    paris = timezone(timedelta(hours=1))
    assert format_timestamp(datetime(2026, 11, 30, 2, 2, 3, 456000, paris)) == NOW_TEXT
    assert format_timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"
    assert format_timestamp(datetime(999, 1, 2, tzinfo=UTC)) == "0999-01-02T00:00:00.000Z"


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2026, 11, 30))
    with pytest.raises(ValueError, match="timezone-aware"):
        DenState(is_active_recently=True, last_activity_at=datetime(2026, 11, 30))


def test_den_body_leaves_unknown_fields_out() -> None:
    assert den_body(DenState(is_active_recently=False), NOW) == {
        "isActiveRecently": False,
        "sentAt": NOW_TEXT,
    }
    state = DenState(is_active_recently=True, open_session_count=0, last_activity_at=NOW)
    assert den_body(state, NOW) == {
        "isActiveRecently": True,
        "sentAt": NOW_TEXT,
        "openSessionCount": 0,
        "lastActivityAt": NOW_TEXT,
    }


@pytest.mark.parametrize("count", [-1, 2**53, True, 2.0, "3"])
def test_den_state_refuses_counts_ingest_would_refuse(count: object) -> None:
    with pytest.raises(ValueError, match="open_session_count"):
        DenState(is_active_recently=True, open_session_count=count)  # type: ignore[arg-type]


def test_den_state_wants_a_real_bool() -> None:
    with pytest.raises(TypeError, match="bool"):
        DenState(is_active_recently=1)  # type: ignore[arg-type]


def test_kubiya_body_carries_every_field() -> None:
    assert kubiya_body(KubiyaState(), "wrk_1", "prod") == {
        "worker_id": "wrk_1",
        "environment_name": "prod",
        "status": "active",
        "tasks_processed": 0,
        "current_task_id": None,
        "worker_metadata": {},
    }
    state = KubiyaState("busy", 41, "task-9", {"region": "eu", "gpus": 2})
    assert kubiya_body(state, "wrk_1", "prod")["worker_metadata"] == {"region": "eu", "gpus": 2}


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"status": "bu\x00sy"}, ValueError),
        ({"current_task_id": "t\x00"}, ValueError),
        ({"status": 3}, TypeError),
        ({"tasks_processed": -1}, ValueError),
        ({"tasks_processed": 2**63}, ValueError),
        ({"tasks_processed": True}, ValueError),
        ({"worker_metadata": ["not", "a", "mapping"]}, TypeError),
    ],
)
def test_kubiya_state_refuses_what_ingest_would_refuse(
    fields: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        KubiyaState(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (200, Outcome.ACCEPTED),
        (204, Outcome.ACCEPTED),
        (429, Outcome.THROTTLED),
        (503, Outcome.THROTTLED),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (504, Outcome.RETRY),
        (408, Outcome.RETRY),
        (400, Outcome.REJECTED),
        (401, Outcome.REJECTED),
        (403, Outcome.REJECTED),
        (404, Outcome.REJECTED),
        (413, Outcome.REJECTED),
        (422, Outcome.REJECTED),
        (301, Outcome.REJECTED),
        (308, Outcome.REJECTED),
    ],
)
def test_statuses_are_classified(code: int, outcome: Outcome) -> None:
    assert classify(code) is outcome
