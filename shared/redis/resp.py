"""Redis commands packed as RESP bytes by hand for the hot path.

redis-py's generic packer costs ~6 µs per beat's arguments; building the bytes directly costs ~1.
"""

from __future__ import annotations

from collections.abc import Sequence


def bulk_strings(values: Sequence[str]) -> bytes:
    text = "".join([f"${len(v)}\r\n{v}\r\n" for v in values])
    if text.isascii():  # then character counts are byte counts
        return text.encode()
    return b"".join([b"$%d\r\n%b\r\n" % (len(b), b) for b in (v.encode() for v in values)])


def command(*args: str) -> bytes:
    return b"*%d\r\n" % len(args) + bulk_strings(args)


def evalsha(sha: str, keys: Sequence[str], args: Sequence[str]) -> bytes:
    head = f"*{3 + len(keys) + len(args)}\r\n$7\r\nEVALSHA\r\n$40\r\n{sha}\r\n$"
    return head.encode() + bulk_strings([str(len(keys)), *keys, *args])[1:]
