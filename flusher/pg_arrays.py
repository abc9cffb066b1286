"""Postgres array literals (`{a,b,NULL}`) written straight from the bytes Redis returned.

Bound as a list, every value would need a Python object and the driver's per-element checks
(most of the flusher's own CPU); as one text literal per column it costs a join, and Postgres
parses the values in C (`$1::text::int8[]`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Worker ids, integers and booleans ("1"/"0") joined by commas: nothing Postgres could read as a
# quote, brace or space, so they go in unquoted.
_PLAIN = re.compile(rb"[\w,-]*")


def _quoted(value: bytes) -> bytes:
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def array_literal(values: Sequence[bytes], *, quote: bool = False) -> str:
    """`values` as the text of a Postgres array, b"" as NULL.

    Values are quoted when `quote` is set (free text) or when one of them is not plain; a value
    Postgres can't take (not UTF-8, a NUL, not a number) then fails the statement, not the
    literal. Raises UnicodeDecodeError (a ValueError) for bytes that are not UTF-8."""
    if not quote:
        plain = b",".join([v or b"NULL" for v in values])
        # A comma inside a value would make two elements of it; counting them rules that out.
        if plain.count(b",") == len(values) - 1 and _PLAIN.fullmatch(plain):
            return "{" + plain.decode("ascii") + "}"
    return "{" + b",".join([_quoted(v) if v else b"NULL" for v in values]).decode() + "}"
