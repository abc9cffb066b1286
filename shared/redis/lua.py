"""Running Lua scripts by their SHA, loading them on the first NOSCRIPT (after a restart)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, ResponseError

from shared.redis.connect import refusal_or_self

Arg = str | int | bytes
ScriptCall = tuple[Sequence[str], Sequence[Arg]]  # one script run's keys and args


class LuaScript:
    """A script called by its precomputed SHA."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def queue(self, pipe: Pipeline, keys: Sequence[str], args: Sequence[Arg]) -> None:
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)

    async def load(self, redis: Redis) -> None:
        await redis.script_load(self.source)

    async def __call__(self, redis: Redis, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            try:
                return await redis.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
            except NoScriptError:
                await self.load(redis)
                return await redis.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            raise refusal_or_self(exc) from exc


async def run_pipelined(
    redis: Redis, script: LuaScript, calls: Sequence[ScriptCall], *, raise_errors: bool = True
) -> list[Any]:
    """Run `script` once per (keys, args) in one pipeline (on a cluster redis-py sends each call
    to its slot's node); load it first if Redis lost it. Error replies are raised (as
    RedisRefused where they quote a passing refusal), or with `raise_errors=False` returned in
    their call's place."""
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
    for i, reply in enumerate(replies):
        if isinstance(reply, Exception):
            replies[i] = reply = refusal_or_self(reply)
            if raise_errors:
                raise reply
    return replies
