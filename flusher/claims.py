"""The Redis side of a flush: claim dirty workers under a lease, then ack or release them.

Every shard of a round goes in one pipelined round trip, so draining costs a few round trips
however many shards there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from shared import hotstore
from shared.redis_conn import LuaScript
from shared.timefmt import now_ms

CLAIM = LuaScript(hotstore.CLAIM_DIRTY)
RELEASE = LuaScript(hotstore.RELEASE_CLAIM)

DEN_WIDTH = 6  # the worker id and the five fields every beat writes
KUBIYA_WIDTH = 1 + len(hotstore.LIVE_FIELDS)

ScriptCall = tuple[Sequence[str], Sequence[str | int | bytes]]  # one script run's keys and args


class LiveColumns:
    """Workers' hot fields as Redis holds them, one list per column: the worker id, then
    LIVE_FIELDS, b"" where a field is missing. The five Kubiya columns are there only when a
    Kubiya beat is among the workers.

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
    """The workers one CLAIM_DIRTY call took from a shard, under the name it is acked or
    released by (its lease expiry and size, see `hotstore.claims_key`)."""

    shard: int
    name: str
    live: LiveColumns

    def __len__(self) -> int:
        return len(self.live)


def parse_claim(shard: int, reply: Sequence[Any]) -> Claim:
    """CLAIM_DIRTY's reply (from a client that returns bytes) as a Claim."""
    if not reply:
        return Claim(shard, "", LiveColumns([[] for _ in range(DEN_WIDTH)]))
    name, *columns, kubiya = reply
    if kubiya:
        n = len(columns[0])
        extra: list[list[bytes]] = [[b""] * n for _ in range(KUBIYA_WIDTH - DEN_WIDTH)]
        for i in range(0, len(kubiya), 6):
            row = kubiya[i] - 1
            for column, value in zip(extra, kubiya[i + 1 : i + 6], strict=True):
                column[row] = value
        columns += extra
    return Claim(shard, name.decode(), LiveColumns(columns))


async def run_scripts(redis: Redis, script: LuaScript, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run `script` once per (keys, args) in one pipeline; load it first if Redis lost it."""
    pipe = redis.pipeline(transaction=False)
    for keys, args in calls:
        script.queue(pipe, keys, args)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
    if missing:
        await script.load(redis)
        pipe = redis.pipeline(transaction=False)
        for i in missing:
            script.queue(pipe, *calls[i])
        for i, reply in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def claim_shards(
    redis: Redis, shards: Iterable[int], limit: int, lease: float, now: int | None = None
) -> list[Claim]:
    """Claim up to `limit` dirty workers from each shard, leased for `lease` seconds.

    Claims whose lease expired (a flusher died between claim and ack) go back to dirty first."""
    shard_list = list(shards)
    at = now_ms() if now is None else now
    calls: list[ScriptCall] = [
        (
            [hotstore.dirty_key(s), hotstore.claims_key(s)],
            [at, int(lease * 1000), limit, hotstore.worker_prefix(s)],
        )
        for s in shard_list
    ]
    replies = await run_scripts(redis, CLAIM, calls)
    return [parse_claim(s, reply) for s, reply in zip(shard_list, replies, strict=True)]


async def claim_dirty(redis: Redis, shard: int, limit: int, lease: float) -> Claim:
    """Claim up to `limit` dirty workers of one shard for `lease` seconds."""
    return (await claim_shards(redis, [shard], limit, lease))[0]


async def ack_claims(redis: Redis, claims: Sequence[Claim]) -> None:
    """End the claims: Postgres holds what they carried."""
    held = [c for c in claims if len(c)]
    if held:
        pipe = redis.pipeline(transaction=False)
        for c in held:
            pipe.hdel(hotstore.claims_key(c.shard), c.name)
        await pipe.execute()


async def release_claims(redis: Redis, claims: Sequence[Claim]) -> None:
    """Give claimed workers back to dirty now rather than when their lease runs out."""
    now = now_ms()
    calls: list[ScriptCall] = [
        ([hotstore.dirty_key(c.shard), hotstore.claims_key(c.shard)], [c.name, now])
        for c in claims
        if len(c)
    ]
    if calls:
        await run_scripts(redis, RELEASE, calls)
