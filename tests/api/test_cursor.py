"""The page cursor: whatever a caller passes back is a Cursor or MalformedCursor, never a crash."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.cursor import Cursor, MalformedCursor, decode_cursor, encode_cursor
from shared.contract import typeid

WORKER = "wrk_01jqz3k5m2a8b9c0d1e2f3g4h5"


def encoded(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def test_a_cursor_round_trips_at_microsecond_precision() -> None:
    cursor = Cursor(datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC), WORKER)
    assert decode_cursor(encode_cursor(cursor)) == cursor


# Superscript two, Arabic-Indic and fullwidth digits, signs, spaces, underscores, nothing.
@pytest.mark.parametrize(
    "micros", ["\u00b2", "\u0661\u0662\u0663", "\uff11\uff12", "+1", "-1", " 1", "1_0", ""]
)
def test_only_ascii_digits_count_as_the_creation_time(micros: str) -> None:
    with pytest.raises(MalformedCursor):
        decode_cursor(encoded(f"{micros}.{WORKER}"))


def _decodes_or_refuses(text: str) -> None:
    try:
        result = decode_cursor(text)
    except MalformedCursor:
        return
    assert isinstance(result, Cursor)
    assert typeid.is_valid(result.worker_id, typeid.WORKER)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.text())
def test_any_text_is_a_cursor_or_malformed(text: str) -> None:
    _decodes_or_refuses(text)


# Random text is rarely valid base64 of anything interesting: build the inside too.
@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.text(), st.sampled_from([WORKER, "", "wrk_", typeid.new_id(typeid.WORKER)]))
def test_any_encoded_text_is_a_cursor_or_malformed(micros: str, worker_id: str) -> None:
    _decodes_or_refuses(encoded(f"{micros}.{worker_id}"))
