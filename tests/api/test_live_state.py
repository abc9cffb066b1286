from datetime import UTC, datetime

import msgspec

from api.live_state import merge_live_state
from shared.timefmt import to_ms

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T0_MS = to_ms(T0)


def durable(**overrides):
    row = {
        "last_heartbeat_at": T0, "last_active_at": T0, "is_active_recently": True,
        "open_session_count": 4, "clock_skew_ms": 0, "reported_status": "idle",
        "tasks_processed": 3, "current_task_id": "old-task", "environment_name": "prod",
        "worker_metadata": '{"v":1}',
    }  # fmt: skip
    return row | overrides


def test_redis_newer_heartbeat_wins_every_field_it_holds():
    live = {"hb": str(T0_MS + 30_000), "iar": "0", "osc": "1", "skew": "-20"}
    state = merge_live_state(durable(), live)
    assert state.last_heartbeat_ms == T0_MS + 30_000
    assert state.last_active_ms == T0_MS  # Redis has no newer activity
    assert (state.is_active_recently, state.open_session_count, state.clock_skew_ms) == (
        False, 1, -20,
    )  # fmt: skip
    assert state.reported_status == "idle"  # no Kubiya beat in Redis: durable value stands


def test_postgres_newer_heartbeat_wins_the_non_monotonic_fields():
    # e.g. Redis lost its data and holds only beats older than what was persisted.
    live = {"hb": str(T0_MS - 60_000), "act": str(T0_MS + 5), "iar": "0", "osc": "9"}
    state = merge_live_state(durable(), live)
    assert state.last_heartbeat_ms == T0_MS
    assert state.last_active_ms == T0_MS + 5  # timestamps are the max of both sides
    assert (state.is_active_recently, state.open_session_count) == (True, 4)


def test_a_kubiya_beat_in_redis_clears_the_task_id_it_no_longer_reports():
    live = {"hb": str(T0_MS + 1), "ks": "active", "kt": "4", "ke": "prod", "km": "{}"}
    state = merge_live_state(durable(), live)
    assert state.reported_status == "active"
    assert state.tasks_processed == 4
    assert state.current_task_id is None
    assert state.worker_metadata == msgspec.Raw(b"{}")


def test_without_redis_fields_the_durable_row_is_served():
    state = merge_live_state(durable(), {})
    assert state.last_heartbeat_ms == T0_MS
    assert state.current_task_id == "old-task"
    assert state.worker_metadata == msgspec.Raw(b'{"v":1}')


def test_a_worker_that_never_beat_has_no_times():
    row = durable(last_heartbeat_at=None, last_active_at=None, is_active_recently=False)
    state = merge_live_state(row, {})
    assert (state.last_heartbeat_ms, state.last_active_ms) == (None, None)
