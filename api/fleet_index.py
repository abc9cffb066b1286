"""Reads of the fleet index (`keys.seen_key`): an org's last heartbeats, one sorted set per shard.

A worker's liveness is a range of its last heartbeat, so counting or listing a liveness is a
score range per shard, all shards in one pipelined round trip. Workers that never beat have no
entry: `never` is the org's live workers minus the indexed ones.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import NamedTuple

from redis.asyncio import Redis

from shared.contract import keys
from shared.contract.liveness import Liveness
from shared.settings import Settings

INDEXED = (Liveness.ONLINE, Liveness.STALE, Liveness.OFFLINE)


class Bounds(NamedTuple):
    """Inclusive heartbeat ms at `now_ms`: online from `online_min`, stale from `stale_min`
    (and below `online_min`), offline below `stale_min`. Matches `liveness_of`."""

    online_min: int
    stale_min: int


def bounds(now_ms: int, settings: Settings) -> Bounds:
    # liveness_of: online while now - hb < stale_after; for whole ms that is hb >= floor(x) + 1.
    return Bounds(
        math.floor(now_ms - settings.stale_after * 1000) + 1,
        math.floor(now_ms - settings.offline_after * 1000) + 1,
    )


def score_range(liveness: Liveness, b: Bounds) -> tuple[str, str]:
    """ZRANGEBYSCORE/ZCOUNT arguments of an indexed liveness."""
    if liveness is Liveness.ONLINE:
        return str(b.online_min), "+inf"
    if liveness is Liveness.STALE:
        return str(b.stale_min), f"({b.online_min}"
    return "-inf", f"({b.stale_min}"


class IndexedCounts(NamedTuple):
    online: int
    stale: int
    offline: int

    @property
    def indexed(self) -> int:
        return self.online + self.stale + self.offline


async def count_liveness(
    redis: Redis, settings: Settings, org_id: str, now_ms: int
) -> IndexedCounts:
    """The org's indexed workers by liveness at `now_ms`: three counts per shard, one trip."""
    b = bounds(now_ms, settings)
    pipe = redis.pipeline(transaction=False)
    for shard in range(settings.shards):
        key = keys.seen_key(shard, org_id)
        pipe.zcount(key, *score_range(Liveness.ONLINE, b))
        pipe.zcount(key, *score_range(Liveness.STALE, b))
        pipe.zcount(key, *score_range(Liveness.OFFLINE, b))
    replies = await pipe.execute()
    return IndexedCounts(sum(replies[0::3]), sum(replies[1::3]), sum(replies[2::3]))


class LivenessSelection(NamedTuple):
    """Worker ids to keep (`include`) or to drop (not `include`) for a liveness filter."""

    ids: list[str]
    include: bool


async def select_liveness(
    redis: Redis, settings: Settings, org_id: str, wanted: Collection[Liveness], now_ms: int
) -> LivenessSelection:
    """The ids matching `wanted` at `now_ms`. Without `never` they are the indexed workers in
    the wanted ranges; with it, the complement of the indexed workers in the other ranges."""
    include = Liveness.NEVER not in wanted
    ranges = [lv for lv in INDEXED if (lv in wanted) == include]
    if not ranges:
        return LivenessSelection([], include)
    b = bounds(now_ms, settings)
    pipe = redis.pipeline(transaction=False)
    for shard in range(settings.shards):
        key = keys.seen_key(shard, org_id)
        for lv in ranges:
            pipe.zrangebyscore(key, *score_range(lv, b))
    ids = [m.decode() for reply in await pipe.execute() for m in reply]
    return LivenessSelection(ids, include)
