from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.contract.times import (
    DATE_TIME_PATTERN,
    MIN_MS,
    format_dt,
    format_ms,
    from_ms,
    parse_ms,
    to_ms,
)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2023-11-07T05:31:56Z", 1_699_335_116_000),
        ("2023-11-07T05:31:56.7Z", 1_699_335_116_700),
        ("2023-11-07T05:31:56.789999Z", 1_699_335_116_789),
        ("2024-02-29T12:00:00Z", 1_709_208_000_000),
        ("1969-12-31T23:59:59.999Z", -1),
        ("2023-11-07T05:31Z", 1_699_335_060_000),  # the pattern leaves the seconds out
        ("0020-02-29T00:00Z", -61_530_969_600_000),
    ],
)
def test_parse_ms_reads_utc_date_times_truncating_to_milliseconds(text, ms):
    assert parse_ms(text) == ms


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_699_335_116_007, "2023-11-07T05:31:56.007Z"),
        (1_709_208_000_000, "2024-02-29T12:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (MIN_MS, "0001-01-01T00:00:00.000Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_format_ms_is_utc_with_z_and_three_fraction_digits(ms, text):
    assert format_ms(ms) == text
    assert re.fullmatch(DATE_TIME_PATTERN, text)
    assert parse_ms(text) == ms


def test_years_before_1000_are_zero_padded():
    assert format_ms(parse_ms("0999-12-31T23:59:59Z")) == "0999-12-31T23:59:59.000Z"


def test_year_zero_is_clamped_to_the_earliest_representable_instant():
    assert parse_ms("0000-02-29T00:00:00Z") == MIN_MS
    assert from_ms(MIN_MS) == datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2024-02-29T00:00:00Z", True),
        ("2023-02-29T00:00:00Z", False),
        ("2000-02-29T00:00:00Z", True),
        ("1900-02-29T00:00:00Z", False),
        ("2100-02-29T00:00:00Z", False),
        ("2400-02-29T00:00:00Z", True),
        ("2024-02-30T00:00:00Z", False),
        ("2024-06-31T00:00:00Z", False),
        ("2024-01-01T10:00Z", True),
        ("2024-01-01T10:00:00.1234Z", True),
        ("2024-01-01T10:00:00+00:00", False),
        ("2024-01-01T10:00:00.Z", False),
    ],
)
def test_date_time_pattern_knows_the_leap_year_rule(text, valid):
    assert bool(re.fullmatch(DATE_TIME_PATTERN, text)) is valid


def test_every_day_the_pattern_admits_parses_like_datetime():
    for year in (1900, 1999, 2000, 2023, 2024, 2100):
        for month in range(1, 13):
            for day in range(1, 32):
                text = f"{year:04d}-{month:02d}-{day:02d}T01:02:03Z"
                if not re.fullmatch(DATE_TIME_PATTERN, text):
                    with pytest.raises(ValueError):
                        datetime(year, month, day)
                    continue
                expected = datetime(year, month, day, 1, 2, 3, tzinfo=UTC)
                assert parse_ms(text) == to_ms(expected)


def test_datetime_conversions_round_trip_at_millisecond_precision():
    value = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)
    ms = to_ms(value)
    assert from_ms(ms) == value.replace(microsecond=999_000)
    assert format_dt(value) == "2024-02-29T23:59:59.999Z"


def test_parse_ms_rejects_text_outside_the_format():
    with pytest.raises(ValueError):
        parse_ms("2024-01-01T10:00:00+01:00")


@pytest.mark.parametrize(
    "text",
    [
        "\u0660\u0660\u0660\u0660-01-01T00:00:00Z",  # Arabic-Indic zeros
        "\u0662\u0660\u0662\u0664-01-01T10:00:00Z",
        "2024-0\u0661-01T10:00:00Z",
        "2024-01-01T1\u0660:00:00Z",
        "2024-01-01T10:00:0\uff15Z",  # a fullwidth digit
        "2024-01-01T10:00:00.\uff11Z",
        "1970-01-01T00:00.5Z",  # a fraction needs the seconds
        "2024-01-01T10Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T10:60:00Z",
        "2024-01-01T10:00:60Z",
        "2023-02-29T00:00:00Z",
    ],
)
def test_parse_ms_takes_only_ascii_digits_and_a_real_time(text):
    with pytest.raises(ValueError):
        parse_ms(text)


def _parses_or_refuses(text: str) -> None:
    try:
        ms = parse_ms(text)
    except ValueError:
        return
    assert type(ms) is int
    assert text.isascii()
    # What parses is a real instant: formatting it gives the same minute (and second) back.
    if not text.startswith("0000"):
        assert format_ms(ms).startswith(text[:19].rstrip("Z"))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.text())
def test_parse_ms_of_any_text_is_an_int_or_value_error(text):
    _parses_or_refuses(text)


# Strings the contract's pattern admits, with any Unicode digit where it says \d.
@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.from_regex(DATE_TIME_PATTERN))
def test_parse_ms_of_any_pattern_match_is_an_int_or_value_error(text):
    _parses_or_refuses(text)
