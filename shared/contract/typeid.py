"""TypeIDs: a type prefix, an underscore and a UUIDv7 in 26 Crockford base32 characters."""

from __future__ import annotations

import os
import re
import time

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_DECODE = {c: i for i, c in enumerate(ALPHABET)}
SUFFIX_LEN = 26

WORKER = "wrk"
ORG = "org"
USER = "usr"
API_KEY = "key"
INSTANCE = "ins"
WEBHOOK = "whk"


def uuid7_int(now_ms: int | None = None) -> int:
    """A UUIDv7 as a 128-bit integer: 48-bit ms timestamp, version 7, variant 0b10, random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68 & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    return (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b


def encode_suffix(value: int) -> str:
    # 26 characters carry 130 bits; the top two are zero, so the first character is 0-7.
    return "".join(ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


def decode_suffix(suffix: str) -> int:
    if len(suffix) != SUFFIX_LEN or suffix[0] > "7":
        raise ValueError("a TypeID suffix is 26 base32 characters starting with 0-7")
    value = 0
    for c in suffix:
        digit = _DECODE.get(c)
        if digit is None:
            raise ValueError(f"invalid base32 character {c!r} in TypeID suffix")
        value = value << 5 | digit
    return value


def new_id(prefix: str, now_ms: int | None = None) -> str:
    return f"{prefix}_{encode_suffix(uuid7_int(now_ms))}"


# What decode_suffix accepts, as one regex: ingest checks every beat's id with it.
_SUFFIX = re.compile(r"[0-7][0-9a-hjkmnp-tv-z]{25}")


def is_valid(value: str, prefix: str) -> bool:
    """True when `value` is `<prefix>_` followed by a well-formed 26-character suffix."""
    if len(value) != len(prefix) + 1 + SUFFIX_LEN or not value.startswith(prefix + "_"):
        return False
    return _SUFFIX.fullmatch(value, len(prefix) + 1) is not None
