"""The pure schedule: first offsets, interval jitter, full-jitter backoff and Retry-After."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from heartbeat_client.timing import (
    Schedule,
    backoff_ceiling,
    first_beat_delay,
    full_jitter_backoff,
    jittered_interval,
    parse_retry_after,
    throttled_delay,
)

from .fakes import FixedRandom

NOW = datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC)


def test_first_beats_of_a_restarted_fleet_spread_over_the_whole_interval() -> None:
    interval = 30.0
    offsets = [first_beat_delay(interval, random.Random(seed)) for seed in range(1000)]

    assert all(0.0 <= offset < interval for offset in offsets)
    per_tenth = [0] * 10
    for offset in offsets:
        per_tenth[int(offset / interval * 10)] += 1
    # Uniform would put ~100 in each tenth; the seeds are fixed, so this cannot flake.
    assert all(50 <= count <= 150 for count in per_tenth), per_tenth


def test_first_beat_delay_stays_below_the_interval_even_at_the_top_of_the_range() -> None:
    assert first_beat_delay(30.0, FixedRandom(0.0)) == 0.0
    assert first_beat_delay(30.0, FixedRandom(0.999999)) < 30.0


def test_jittered_interval_stays_within_ten_percent_and_uses_the_range() -> None:
    rng = random.Random(7)
    waits = [jittered_interval(30.0, 0.1, rng) for _ in range(1000)]

    assert all(27.0 <= wait <= 33.0 for wait in waits)
    assert min(waits) < 27.5 and max(waits) > 32.5
    assert jittered_interval(30.0, 0.0, rng) == 30.0


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.0, math.nan])
def test_jitter_must_be_a_fraction(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        jittered_interval(30.0, jitter, random.Random(0))


@pytest.mark.parametrize("interval", [0.0, -1.0, math.inf, math.nan])
def test_interval_must_be_finite_and_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        first_beat_delay(interval, random.Random(0))
    with pytest.raises(ValueError, match="interval"):
        jittered_interval(interval, 0.1, random.Random(0))


def test_backoff_ceiling_doubles_per_failure_up_to_the_cap() -> None:
    ceilings = [backoff_ceiling(attempt, 1.0, 60.0) for attempt in range(8)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert backoff_ceiling(2, 0.25, 60.0) == 1.0


def test_backoff_is_never_negative_nor_above_its_ceiling() -> None:
    for seed in range(50):
        rng = random.Random(seed)
        for attempt in range(40):
            delay = full_jitter_backoff(attempt, 1.0, 60.0, rng)
            assert 0.0 <= delay <= min(60.0, 2.0**attempt)


def test_backoff_survives_an_outage_of_any_length() -> None:
    rng = random.Random(3)
    for attempt in (1023, 1024, 10_000, 10**9):
        assert 0.0 <= full_jitter_backoff(attempt, 1.0, 60.0, rng) <= 60.0
    assert full_jitter_backoff(10**9, 1.0, 60.0, FixedRandom(1.0)) == 60.0


def test_full_jitter_draws_from_zero_to_the_ceiling() -> None:
    rng = random.Random(11)
    delays = [full_jitter_backoff(4, 1.0, 60.0, rng) for _ in range(1000)]
    assert min(delays) < 1.6 and max(delays) > 14.4  # ceiling 16: the whole range is used
    assert full_jitter_backoff(4, 1.0, 60.0, FixedRandom(0.0)) == 0.0
    assert full_jitter_backoff(4, 1.0, 60.0, FixedRandom(1.0)) == 16.0


@pytest.mark.parametrize(
    ("attempt", "base", "cap"), [(-1, 1.0, 60.0), (0, 0.0, 60.0), (0, 1.0, 0.0), (0, 1.0, math.inf)]
)
def test_backoff_refuses_nonsense(attempt: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        full_jitter_backoff(attempt, base, cap, random.Random(0))


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("86400", 86400.0),
        # HTTP-dates in the three forms HTTP allows, 30 s after NOW.
        ("Mon, 30 Nov 2026 01:02:33 GMT", 30.0),
        ("Monday, 30-Nov-26 01:02:33 GMT", 30.0),
        ("Mon Nov 30 01:02:33 2026", 30.0),
        # A date that has passed means "now".
        ("Mon, 30 Nov 2026 01:00:00 GMT", 0.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str, seconds: float) -> None:
    assert parse_retry_after(header, NOW) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "header",
    [None, "", "  ", "soon", "-3", "+3", "1e3", "inf", "nan", "0x10", "٣", "7 seconds", "1,5"],
)
def test_retry_after_garbage_is_ignored(header: str | None) -> None:
    assert parse_retry_after(header, NOW) is None


def test_retry_after_date_is_measured_from_the_given_clock() -> None:
    later = NOW + timedelta(seconds=10)
    assert parse_retry_after("Mon, 30 Nov 2026 01:02:33 GMT", later) == pytest.approx(20.0)


def test_throttled_delay_honours_retry_after_as_a_floor_under_a_cap() -> None:
    assert throttled_delay(7.0, 300.0, 0.5) == 7.0
    assert throttled_delay(86400.0, 300.0, 0.5) == 300.0  # a proxy's "come back tomorrow"
    assert throttled_delay(1.0, 300.0, 8.0) == 8.0  # a long outage still backs off
    assert throttled_delay(None, 300.0, 3.0) == 3.0


def test_schedule_combines_the_functions_with_one_draw_per_delay() -> None:
    schedule = Schedule(interval=30.0, jitter=0.1, backoff_base=1.0, max_backoff=60.0)
    rng = FixedRandom(0.5)
    assert schedule.first_delay(rng) == 15.0
    assert schedule.after_success(rng) == 30.0
    assert schedule.after_failure(3, rng) == 4.0
    assert schedule.after_failure(3, rng, retry_after=7.0) == 7.0
    assert schedule.after_failure(3, rng, retry_after=1.0) == 4.0
    assert Schedule(max_retry_after=5.0).after_failure(0, rng, retry_after=600.0) == 5.0


@pytest.mark.parametrize(
    "fields",
    [
        {"interval": 0.0},
        {"jitter": 1.0},
        {"backoff_base": 0.0},
        {"max_backoff": math.inf},
        {"max_retry_after": -1.0},
    ],
)
def test_schedule_refuses_nonsense(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Schedule(**fields)
