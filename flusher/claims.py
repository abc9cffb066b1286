"""The Redis side of a flush: claim dirty workers under a lease, then ack or release them.

Every shard of a round goes in one pipelined round trip, so draining costs a few round trips
however many shards there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from shared import hotstore
from shared.redis_conn import LuaScript
from shared.timefmt import now_ms

CLAIM = LuaScript(hotstore.CLAIM_DIRTY)
ACK = LuaScript(hotstore.ACK_PERSISTED)
RELEASE = LuaScript(hotstore.RELEASE_CLAIM)

_STRIDE = 1 + len(hotstore.LIVE_FIELDS)  # worker id, then its LIVE_FIELDS

ScriptCall = tuple[Sequence[str], Sequence[str | int | bytes]]  # one script run's keys and args


class LiveRow(NamedTuple):
    """A worker's hot fields as Postgres takes them (the columns of `persist_batch`)."""

    worker_id: str
    heartbeat_ms: int
    active_ms: int | None
    active_recently: bool | None
    open_sessions: int | None
    skew_ms: int | None
    status: str | None  # Kubiya's fields: all present after a Kubiya beat, else all None
    tasks_processed: int | None
    current_task_id: str | None
    environment: str | None
    metadata_json: str | None


@dataclass(slots=True)
class Claim:
    """The workers one CLAIM_DIRTY call took from a shard, held until `lease` (ms)."""

    shard: int
    lease: str
    ids: list[str] = field(default_factory=list)  # everything claimed, acked or released together
    rows: list[LiveRow] = field(default_factory=list)  # those whose hash still exists


_NO_KUBIYA = (None, None, None, None, None)


def _int(value: bytes) -> int | None:
    return int(value) if value else None


def _text(value: bytes) -> str | None:
    return value.decode() if value else None


def parse_claim(shard: int, reply: Sequence[bytes]) -> Claim:
    """CLAIM_DIRTY's reply (from a client that returns bytes) as a Claim."""
    claim = Claim(shard, reply[0].decode())
    ids, rows = claim.ids, claim.rows
    for i in range(1, len(reply), _STRIDE):
        worker_id = reply[i].decode()
        ids.append(worker_id)
        hb, act, iar, osc, skew, ks, kt, kc, ke, km = reply[i + 1 : i + _STRIDE]
        if not hb:  # the worker was deleted (its hash is gone) or never beat
            continue
        kubiya: tuple[str | None, int | None, str | None, str | None, str | None] = (
            (ks.decode(), _int(kt), _text(kc), _text(ke), _text(km)) if ks else _NO_KUBIYA
        )
        rows.append(
            LiveRow(
                worker_id, int(hb), _int(act), (iar == b"1") if iar else None, _int(osc),
                _int(skew), *kubiya,
            )
        )  # fmt: skip
    return claim


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
    redis: Redis, shards: Iterable[int], limit: int, lease: float
) -> list[Claim]:
    """Claim up to `limit` dirty workers from each shard, leased for `lease` seconds.

    Leases that expired (a flusher died between claim and ack) go back to dirty first."""
    shard_list = list(shards)
    now = now_ms()
    calls: list[ScriptCall] = [
        (
            [hotstore.dirty_key(s), hotstore.inflight_key(s)],
            [now, int(lease * 1000), limit, hotstore.worker_prefix(s)],
        )
        for s in shard_list
    ]
    replies = await run_scripts(redis, CLAIM, calls)
    return [parse_claim(s, reply) for s, reply in zip(shard_list, replies, strict=True)]


async def claim_dirty(redis: Redis, shard: int, limit: int, lease: float) -> Claim:
    """Claim up to `limit` dirty workers of one shard for `lease` seconds."""
    return (await claim_shards(redis, [shard], limit, lease))[0]


async def ack_claims(redis: Redis, claims: Sequence[Claim]) -> None:
    """End the claims' leases: Postgres holds what they carried."""
    calls: list[ScriptCall] = [
        ([hotstore.inflight_key(c.shard)], [c.lease, " ".join(c.ids)]) for c in claims if c.ids
    ]
    if calls:
        await run_scripts(redis, ACK, calls)


async def release_claims(redis: Redis, claims: Sequence[Claim]) -> None:
    """Give claimed workers back to dirty now rather than when their lease runs out."""
    now = now_ms()
    calls: list[ScriptCall] = [
        (
            [hotstore.dirty_key(c.shard), hotstore.inflight_key(c.shard)],
            [c.lease, now, *c.ids],
        )
        for c in claims
        if c.ids
    ]
    if calls:
        await run_scripts(redis, RELEASE, calls)
