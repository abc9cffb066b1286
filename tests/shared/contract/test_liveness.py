from shared.contract.liveness import Liveness, liveness_of

NOW = 1_700_000_000_000


def test_no_heartbeat_yet_is_never():
    assert liveness_of(None, NOW, 75, 150) is Liveness.NEVER


def test_recent_heartbeat_is_online():
    assert liveness_of(NOW - 74_999, NOW, 75, 150) is Liveness.ONLINE


def test_missed_beats_inside_the_grace_are_stale():
    assert liveness_of(NOW - 75_000, NOW, 75, 150) is Liveness.STALE
    assert liveness_of(NOW - 149_999, NOW, 75, 150) is Liveness.STALE


def test_beyond_the_grace_is_offline():
    assert liveness_of(NOW - 150_000, NOW, 75, 150) is Liveness.OFFLINE


def test_a_heartbeat_slightly_ahead_of_this_clock_is_online():
    assert liveness_of(NOW + 500, NOW, 75, 150) is Liveness.ONLINE


def test_liveness_serializes_as_its_lowercase_name():
    assert [str(v) for v in Liveness] == ["online", "stale", "offline", "never"]


def test_a_disconnect_at_or_after_the_last_heartbeat_is_offline_at_once():
    assert liveness_of(NOW - 1000, NOW, 75, 150, disconnected_ms=NOW - 1000) is Liveness.OFFLINE
    assert liveness_of(NOW - 1000, NOW, 75, 150, disconnected_ms=NOW - 10) is Liveness.OFFLINE
    assert liveness_of(None, NOW, 75, 150, disconnected_ms=NOW) is Liveness.OFFLINE


def test_a_heartbeat_after_a_disconnect_counts_as_usual():
    assert liveness_of(NOW - 10, NOW, 75, 150, disconnected_ms=NOW - 1000) is Liveness.ONLINE
    assert liveness_of(NOW - 80_000, NOW, 75, 150, disconnected_ms=NOW - 90_000) is Liveness.STALE
