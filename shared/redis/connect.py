"""Connecting to Redis (one server or a cluster), and what "Redis can't take this" looks like."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from shared.redis.keepalive import keepalive_options
from shared.settings import Settings


# What "Redis can't take this now" looks like: unreachable, or refusing writes while it loads,
# fails over or is out of memory. Anything else (a script error) is a bug and should surface.
class RedisRefused(RedisError):
    """A script's write was refused for a passing reason (OOM, read-only replica, loading)."""


# Inside a script Redis reports these as script errors that quote the original error code.
_REFUSALS = ("-OOM ", "-READONLY ", "-LOADING ", "-MASTERDOWN ", "-TRYAGAIN ", "-CLUSTERDOWN ")


def refusal_or_self(exc: Exception) -> Exception:
    """A script error that quotes a refusal becomes RedisRefused, so callers treat it as down."""
    if isinstance(exc, ResponseError) and any(code in str(exc) for code in _REFUSALS):
        return RedisRefused(str(exc))
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
