"""Claiming dirty workers: the typed arguments and replies of `claim_dirty.lua`,
`release_claim.lua` and `return_legacy_claims.lua`, and the claimed columns they yield.

The flusher calls these through `flusher.claims`; nothing else packs their arguments or
takes their replies apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.contract import keys
from shared.contract.lua_scripts import load_script
from shared.redis.lua import ScriptCall

CLAIM_DIRTY = load_script("claim_dirty")
RELEASE_CLAIM = load_script("release_claim")
RETURN_LEGACY_CLAIMS = load_script("return_legacy_claims")

DEN_WIDTH = 6  # the worker id and the five fields every beat writes
KUBIYA_WIDTH = 1 + len(keys.LIVE_FIELDS)
_KUBIYA_ROW = 1 + KUBIYA_WIDTH - DEN_WIDTH  # a row number and the fields beyond Den's


class LiveColumns:
    """Workers' hot fields as Redis holds them, one list per column: the worker id, then
    LIVE_FIELDS, b"" where a field is missing. The columns beyond Den's (Kubiya's status fields,
    system info, the disconnect) are there only when a worker among them has a Kubiya status or
    a disconnect in Redis.

    Kept as the bytes Redis sent: Postgres parses them (see `flusher.pg_arrays`), so a worker
    costs no Python object per field."""

    __slots__ = ("columns",)

    def __init__(self, columns: list[list[bytes]]) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns[0])

    @property
    def ids(self) -> list[bytes]:
        return self.columns[0]

    @property
    def has_kubiya(self) -> bool:
        return len(self.columns) > DEN_WIDTH

    def slice(self, start: int, stop: int) -> LiveColumns:
        return LiveColumns([column[start:stop] for column in self.columns])

    @staticmethod
    def join(parts: Iterable[LiveColumns]) -> LiveColumns:
        parts = list(parts)
        width = max((len(p.columns) for p in parts), default=DEN_WIDTH)
        columns: list[list[bytes]] = [[] for _ in range(width)]
        for part in parts:
            for column, own in zip(columns, part.columns, strict=False):
                column.extend(own)
            for column in columns[len(part.columns) :]:
                column.extend([b""] * len(part))
        return LiveColumns(columns)


@dataclass(slots=True)
class Claim:
    """The workers one claim took from a shard, under the name it is acked or released by (its
    lease expiry and size, see `keys.claims_key`)."""

    shard: int
    name: str
    live: LiveColumns

    def __len__(self) -> int:
        return len(self.live)


def claim_call(shard: int, now_ms: int, lease_ms: int, limit: int) -> ScriptCall:
    return (
        [keys.dirty_key(shard), keys.claims_key(shard)],
        [now_ms, lease_ms, limit, keys.worker_prefix(shard)],
    )


def parse_claim(shard: int, reply: Sequence[Any]) -> Claim:
    """CLAIM_DIRTY's reply (from a client that returns bytes) as a Claim."""
    if not reply:
        return Claim(shard, "", LiveColumns([[] for _ in range(DEN_WIDTH)]))
    name, *columns, kubiya = reply
    if kubiya:
        n = len(columns[0])
        extra: list[list[bytes]] = [[b""] * n for _ in range(KUBIYA_WIDTH - DEN_WIDTH)]
        for i in range(0, len(kubiya), _KUBIYA_ROW):
            row = kubiya[i] - 1
            for column, value in zip(extra, kubiya[i + 1 : i + _KUBIYA_ROW], strict=True):
                column[row] = value
        columns += extra
    return Claim(shard, name.decode(), LiveColumns(columns))


def ack_command(claim: Claim) -> tuple[str, str, str]:
    """The command that ends a claim whose workers Postgres now holds."""
    return ("HDEL", keys.claims_key(claim.shard), claim.name)


def release_call(claim: Claim, now_ms: int) -> ScriptCall:
    return [keys.dirty_key(claim.shard), keys.claims_key(claim.shard)], [claim.name, now_ms]


def legacy_claims_call(shard: int, now_ms: int) -> ScriptCall:
    return [keys.dirty_key(shard), keys.legacy_inflight_key(shard)], [now_ms]


def parse_legacy_returned(reply: Any) -> int:
    """How many workers a RETURN_LEGACY_CLAIMS call handed back to dirty."""
    return int(reply)
