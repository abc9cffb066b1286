"""Paging by a numeric id, newest first: `limit` and a `cursor` that is the last id shown (the
events list and a webhook's deliveries)."""

from __future__ import annotations

import re
from typing import NamedTuple

from starlette.datastructures import QueryParams
from starlette.responses import Response

from api import error_responses

_DIGITS = re.compile(r"[0-9]{1,18}")
NEWEST = 2**63 - 1  # the `before` of a first page


class IdPage(NamedTuple):
    limit: int
    before: int  # ids below this one


def parse_id_page(params: QueryParams, default_limit: int, max_limit: int) -> IdPage | Response:
    """The page asked for, or a 400 naming the bad parameter."""
    limit = default_limit
    raw = params.get("limit")
    if raw is not None:
        if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= max_limit:
            return error_responses.invalid(f"Expected an integer from 1 to {max_limit}.", ["limit"])
        limit = int(raw)
    before = NEWEST
    cursor = params.get("cursor")
    if cursor:
        if not _DIGITS.fullmatch(cursor):
            return error_responses.invalid(
                "Malformed cursor; pass back a nextCursor as is.", ["cursor"]
            )
        before = int(cursor)
    return IdPage(limit, before)
