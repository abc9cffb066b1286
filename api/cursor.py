"""The list's page cursor: the last row of a page, opaque to callers."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from shared.contract import typeid

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MICROS = re.compile(r"[0-9]{1,18}")


class Cursor(NamedTuple):
    """The last row of a page: the next page starts strictly after it."""

    created_at: datetime
    worker_id: str
    # The page's filters as a query string (`api.fleet_filters.filter_text`); '' for none, and
    # then the cursor is the one an unfiltered page always had.
    filters: str = ""


class MalformedCursor(ValueError):
    pass


def encode_cursor(cursor: Cursor) -> str:
    # Microseconds, so rows created within the same millisecond are neither skipped nor repeated.
    micros = (cursor.created_at - _EPOCH) // _MICROSECOND
    raw = f"{micros}.{cursor.worker_id}".encode()
    if cursor.filters:
        raw += b"?" + cursor.filters.encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(text: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise MalformedCursor from None
    raw, _, filters = raw.partition("?")
    micros, _, worker_id = raw.partition(".")
    # ASCII digits only: str.isdigit also takes superscript two, which int() then refuses.
    if not _MICROS.fullmatch(micros) or not typeid.is_valid(worker_id, typeid.WORKER):
        raise MalformedCursor
    try:
        return Cursor(_EPOCH + int(micros) * _MICROSECOND, worker_id, filters)
    except OverflowError:
        raise MalformedCursor from None
