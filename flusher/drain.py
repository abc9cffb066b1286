"""Draining dirty workers: claim, persist, ack, until nothing is dirty.

A round claims from every shard in one round trip, writes the rows in chunks, then acks in one
round trip. When the write fails the round's claims go straight back to dirty; when the process
dies instead, their leases expire and the next claim puts them back. Either way nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
from redis.asyncio import Redis

from flusher.claims import ack_claims, claim_shards, release_claims
from flusher.persist import persist_rows
from shared.contract.claims import Claim, LiveColumns
from shared.settings import Settings

# A round claims about this many chunks' worth of workers across all shards.
ROUND_CHUNKS = 4

AfterClaim = Callable[[Sequence[Claim]], Awaitable[None]]


async def drain_round(
    redis: Redis,
    pool: asyncpg.Pool,
    settings: Settings,
    shards: Sequence[int],
    limit: int,
    after_claim: AfterClaim | None = None,
) -> tuple[int, int]:
    """One claim-persist-ack round over `shards`; returns (workers claimed, rows written)."""
    claims = [c for c in await claim_shards(redis, shards, limit, settings.flush_lease) if len(c)]
    claimed = sum(len(c) for c in claims)
    if not claimed:
        return 0, 0
    try:
        if after_claim is not None:
            await after_claim(claims)
        live = LiveColumns.join(c.live for c in claims)
        written = await persist_rows(pool, live, settings.flush_chunk)
    except BaseException:
        # Best effort: if Redis is unreachable too, the leases expire and do the same.
        with contextlib.suppress(Exception):
            await release_claims(redis, claims)
        raise
    await ack_claims(redis, claims)
    return claimed, written


def round_limit(settings: Settings, shards: int) -> int:
    """Per-shard claim size so that one round holds about ROUND_CHUNKS chunks."""
    return max(1, math.ceil(settings.flush_chunk * ROUND_CHUNKS / shards))


async def drain_shard(redis: Redis, pool: asyncpg.Pool, settings: Settings, shard: int) -> int:
    """Persist every dirty worker of one shard; returns the rows written."""
    written = 0
    while True:
        claimed, n = await drain_round(redis, pool, settings, [shard], settings.flush_chunk)
        written += n
        if not claimed:
            return written


async def drain_all(
    redis: Redis,
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    after_claim: AfterClaim | None = None,
    budget: float | None = None,
) -> int:
    """Persist dirty workers of every shard until none is left (or `budget` seconds, default
    half the lease, have passed, so a steady stream of beats can't keep one run going forever).
    Returns the rows written.

    Rounds overlap: while Postgres writes one, Redis hands out the next and acks the last."""
    shards = list(range(settings.shards))
    limit = round_limit(settings, settings.shards)
    deadline = time.monotonic() + (settings.flush_lease / 2 if budget is None else budget)

    async def claim() -> list[Claim]:
        claims = [
            c for c in await claim_shards(redis, shards, limit, settings.flush_lease) if len(c)
        ]
        if claims and after_claim is not None:
            await after_claim(claims)
        return claims

    async def nothing() -> list[Claim]:
        return []

    written = 0
    done: list[Claim] = []
    current = await claim()
    try:
        while current:
            live = LiveColumns.join(c.live for c in current)
            more = time.monotonic() < deadline
            persisted, following, acked = await asyncio.gather(
                persist_rows(pool, live, settings.flush_chunk),
                claim() if more else nothing(),
                ack_claims(redis, done),
                return_exceptions=True,
            )
            failure = next(
                (r for r in (persisted, following, acked) if isinstance(r, BaseException)), None
            )
            if failure is not None:
                # Best effort: what can't be acked or released here waits for its lease to expire.
                with contextlib.suppress(Exception):
                    if isinstance(following, list):
                        await release_claims(redis, following)
                    if isinstance(persisted, BaseException):
                        await release_claims(redis, current)
                    else:
                        await ack_claims(redis, current)
                raise failure
            assert isinstance(persisted, int) and isinstance(following, list)
            written += persisted
            done, current = current, following
        await ack_claims(redis, done)
    except asyncio.CancelledError:  # the job was cancelled: don't make the next run wait
        with contextlib.suppress(Exception):
            await release_claims(redis, current)
        raise
    return written
