"""Time on the wire: RFC 3339 UTC with `Z` and millisecond precision; integers of ms inside."""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime, timedelta

# The date-time pattern of the Den contract, leap-year rule included (seconds are optional).
DATE_TIME_PATTERN = (
    r"^(?:(?:\d\d[2468][048]|\d\d[13579][26]|\d\d0[48]|[02468][048]00|[13579][26]00)-02-29"
    r"|\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|(?:02)-(?:0[1-9]|1\d|2[0-8])))T(?:(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:Z))$"
)
# What parse_ms reads: what the pattern admits, with ASCII digits only. To Python's `re`, `\d` is
# any Unicode digit (Arabic-Indic ones pass); a date-time's digits are 0-9. Like the pattern, and
# unlike RFC 3339, it leaves the seconds optional: a time without them is on the minute.
_PARTS = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?Z"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 0001-01-01T00:00:00Z. The pattern admits year 0000, which datetime (so asyncpg) can't hold.
MIN_MS = -62_135_596_800_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_ms(value: str) -> int:
    """Milliseconds since the epoch of a UTC date-time of the contract's pattern
    ("2024-01-01T10:00:00.5Z", "2024-01-01T10:00Z"); ValueError for anything else, including a
    digit other than 0-9."""
    m = _PARTS.fullmatch(value)
    if m is None:
        raise ValueError(f"not a UTC date-time such as 2024-01-01T10:00:00Z: {value!r}")
    hour, minute, second = int(m[4]), int(m[5]), int(m[6] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"not a time of day: {value!r}")
    if m[1] == "0000":
        _day_start_ms("2000" + value[4:10])  # a valid day? Year 0 is a leap year, as 2000 is
        return MIN_MS
    ms = _day_start_ms(value[:10]) + hour * 3_600_000 + minute * 60_000 + second * 1000
    fraction = m[7]
    if fraction:
        ms += int(fraction[:3].ljust(3, "0"))
    return ms


# Beats name today's date over and over: building a datetime for it each time costs ~1 µs.
@functools.lru_cache(maxsize=1024)
def _day_start_ms(date: str) -> int:
    day = datetime(int(date[0:4]), int(date[5:7]), int(date[8:10]), tzinfo=UTC)
    return (day - _EPOCH).days * 86_400_000


# The fraction and zone of every millisecond, spelled once: half the cost of formatting them.
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


def format_ms(ms: int) -> str:
    return _format_second(ms // 1000) + _MILLIS[ms % 1000]


# Every heartbeat response formats times of the last few seconds: cache their text.
@functools.lru_cache(maxsize=4096)
def _format_second(second: int) -> str:
    dt = datetime.fromtimestamp(second, UTC)
    # Field by field: strftime's %Y does not zero-pad years before 1000 on every platform.
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )


def format_dt(value: datetime) -> str:
    return format_ms(to_ms(value))


def to_ms(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)
