"""The Redis side of a flush: claim dirty workers under a lease, then ack or release them.

Every shard of a round goes in one pipelined round trip, so draining costs a few round trips
however many shards there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from redis.asyncio import Redis

from shared.contract.claims import (
    CLAIM_DIRTY,
    RELEASE_CLAIM,
    Claim,
    ack_command,
    claim_call,
    parse_claim,
    release_call,
)
from shared.contract.times import now_ms
from shared.redis.lua import run_pipelined
from shared.tracing import span


async def claim_shards(
    redis: Redis, shards: Iterable[int], limit: int, lease: float, now: int | None = None
) -> list[Claim]:
    """Claim up to `limit` dirty workers from each shard, leased for `lease` seconds.

    Claims whose lease expired (a flusher died between claim and ack) go back to dirty first."""
    shard_list = list(shards)
    at = now_ms() if now is None else now
    calls = [claim_call(s, at, int(lease * 1000), limit) for s in shard_list]
    with span("claim_dirty", store="redis") as claiming:
        replies = await run_pipelined(redis, CLAIM_DIRTY, calls)
        claims = [parse_claim(s, reply) for s, reply in zip(shard_list, replies, strict=True)]
        claiming.set_attribute("hb.shards", len(shard_list))
        claiming.set_attribute("hb.workers", sum(len(c) for c in claims))
    return claims


async def claim_dirty(redis: Redis, shard: int, limit: int, lease: float) -> Claim:
    """Claim up to `limit` dirty workers of one shard for `lease` seconds."""
    return (await claim_shards(redis, [shard], limit, lease))[0]


async def ack_claims(redis: Redis, claims: Sequence[Claim]) -> None:
    """End the claims: Postgres holds what they carried."""
    held = [c for c in claims if len(c)]
    if held:
        pipe = redis.pipeline(transaction=False)
        for c in held:
            pipe.execute_command(*ack_command(c))
        with span("HDEL", {"hb.claims": len(held)}, store="redis"):
            await pipe.execute()


async def release_claims(redis: Redis, claims: Sequence[Claim]) -> None:
    """Give claimed workers back to dirty now rather than when their lease runs out."""
    now = now_ms()
    calls = [release_call(c, now) for c in claims if len(c)]
    if calls:
        with span("release_claim", {"hb.claims": len(calls)}, store="redis"):
            await run_pipelined(redis, RELEASE_CLAIM, calls)
