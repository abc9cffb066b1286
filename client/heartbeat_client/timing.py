"""When to send the next beat: pure functions of the schedule, the failure count and a `Random`.

Everything that decides a delay lives here, free of I/O and clocks, so the schedule can be
checked exhaustively without sending anything or waiting for anything.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# 2.0 ** 1000 is still a finite float; beyond it the ceiling is the cap anyway.
_MAX_EXPONENT = 1000
# Retry-After's delay-seconds is ASCII digits; a fraction is tolerated, signs and exponents not.
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


def first_beat_delay(interval: float, rng: random.Random) -> float:
    """A uniform offset in [0, interval).

    A fleet restarted together (a deploy, a node reboot) would otherwise beat in lockstep for
    ever, turning a smooth load into one spike per interval.
    """
    _check_interval(interval)
    return rng.random() * interval


def jittered_interval(interval: float, jitter: float, rng: random.Random) -> float:
    """The interval stretched or shrunk by up to `jitter` (a fraction of it).

    Independent clocks drift into step over time; a little noise on every wait keeps the
    spread that the first offset created.
    """
    _check_interval(interval)
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be a fraction in [0, 1), got {jitter!r}")
    return interval * (1.0 + rng.uniform(-jitter, jitter))


def backoff_ceiling(attempt: int, base: float, cap: float) -> float:
    """min(cap, base * 2**attempt), without overflowing for very long outages."""
    if attempt < 0:
        raise ValueError(f"attempt counts failures and cannot be negative, got {attempt!r}")
    if not (base > 0 and math.isfinite(base)) or not (cap > 0 and math.isfinite(cap)):
        raise ValueError(f"base and cap must be finite and > 0, got {base!r} and {cap!r}")
    return min(cap, base * 2.0 ** min(attempt, _MAX_EXPONENT))


def full_jitter_backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """A uniform delay in [0, backoff_ceiling(attempt, base, cap)].

    `attempt` is the number of failures that came before this one (0 after the first). Full
    jitter, rather than a fixed doubling, keeps workers that failed together from retrying
    together against a service that is just coming back.
    """
    return rng.uniform(0.0, backoff_ceiling(attempt, base, cap))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait according to a Retry-After header, or None when it says nothing usable.

    The header is either a number of seconds or an HTTP-date; a date in the past means "now"
    (0.0). Anything else is ignored rather than trusted, so a garbled header from some proxy
    falls back to ordinary backoff instead of stalling the worker or spinning it.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELAY_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime's form and "-0000" carry no zone; HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def throttled_delay(retry_after: float | None, max_retry_after: float, backoff: float) -> float:
    """The wait after a 429 or 503: what the server asked for, but never less than backoff.

    Retry-After is a floor, not a schedule: a store that stays down keeps answering "1", and a
    large fleet retrying every second would multiply the load it sees. The server's figure is
    capped so a misconfigured proxy asking for hours cannot silence a worker for that long.
    """
    if retry_after is None:
        return backoff
    return max(min(retry_after, max_retry_after), backoff)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The heartbeater's timing policy, checked once, applied through the functions above."""

    interval: float = 30.0
    jitter: float = 0.1
    backoff_base: float = 1.0
    max_backoff: float = 60.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        _check_interval(self.interval)
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter must be a fraction in [0, 1), got {self.jitter!r}")
        for name in ("backoff_base", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")

    def first_delay(self, rng: random.Random) -> float:
        return first_beat_delay(self.interval, rng)

    def after_success(self, rng: random.Random) -> float:
        return jittered_interval(self.interval, self.jitter, rng)

    def after_failure(
        self, failures: int, rng: random.Random, retry_after: float | None = None
    ) -> float:
        """`failures` came before this one; `retry_after` only when the server asked (429/503)."""
        backoff = full_jitter_backoff(failures, self.backoff_base, self.max_backoff, rng)
        return throttled_delay(retry_after, self.max_retry_after, backoff)


def _check_interval(interval: float) -> None:
    if not (interval > 0 and math.isfinite(interval)):
        raise ValueError(f"interval must be finite and > 0 seconds, got {interval!r}")
