"""Connecting to Redis (one server or a cluster), and what "Redis can't take this" looks like."""

from __future__ import annotations

from typing import Any

from redis._parsers.base import BaseParser
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from shared.redis.keepalive import keepalive_options
from shared.settings import Settings


# What "Redis can't take this now" looks like: unreachable, busy with a long script, refusing
# writes while it loads, fails over or is out of memory, or a cluster moving a slot. Anything
# else (a script error) is a bug and should surface.
class RedisRefused(ResponseError):
    """A command was refused for a passing reason (busy, OOM, read-only replica, loading).

    A ResponseError, because redis-py raises only those of the error replies it parses."""


_CODES = ("BUSY", "OOM", "READONLY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")
# A refusal as the reply itself, or quoted (with its dash) inside a script's error.
_REFUSALS = tuple(f"{code} " for code in _CODES)
_QUOTED = tuple(f"-{code} " for code in _CODES)
# A script stopped at a key whose slot is being moved to another node (resharding): Redis 6 says
# "Lua script attempted to access ...", Redis 7 "Script attempted to access ...".
_MOVING = "access a non local key in a cluster node"


# A BUSY reply (a script running past busy-reply-threshold) is as passing as LOADING, which
# redis-py already maps to a class of its own; without this it is a bare ResponseError.
BaseParser.EXCEPTION_CLASSES.setdefault("BUSY", RedisRefused)


def refusal_or_self(exc: Exception) -> Exception:
    """An error reply that is a passing refusal becomes RedisRefused, so callers answer 503."""
    if isinstance(exc, ResponseError) and not isinstance(exc, RedisRefused):
        text = str(exc)
        if text.startswith(_REFUSALS) or any(code in text for code in _QUOTED) or _MOVING in text:
            return RedisRefused(text)
    return exc


REDIS_DOWN = (
    RedisRefused,
    RedisConnectionError, RedisTimeoutError, OSError, BusyLoadingError, ReadOnlyError,
    OutOfMemoryError, MasterDownError, ClusterDownError, TryAgainError,
)  # fmt: skip


def connect_redis(settings: Settings, max_connections: int = 64, blocking: bool = False) -> Redis:
    """A client whose stale connections reconnect once transparently after a Redis restart.

    `blocking`: with all connections busy, wait up to the Redis timeout for one to come free
    rather than fail at once (which a caller would take for Redis being down)."""
    common: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_timeout,
        "retry": Retry(NoBackoff(), 1),
        "retry_on_error": [RedisConnectionError],
        "health_check_interval": 0,
    }
    if not settings.redis_url.startswith("unix:"):
        common.update(socket_keepalive=True, socket_keepalive_options=keepalive_options())
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **common)
    if blocking:
        pool = BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=max_connections, timeout=settings.redis_timeout,
            **common,
        )  # fmt: skip
        return Redis.from_pool(pool)
    return Redis.from_url(settings.redis_url, max_connections=max_connections, **common)
