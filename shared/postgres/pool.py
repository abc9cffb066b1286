"""Connection pools, and what "Postgres is unavailable" looks like."""

from __future__ import annotations

import asyncpg

# A failure to reach Postgres, as opposed to a bug in a query (which should surface).
POSTGRES_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.OperatorInterventionError,  # the server is shutting down, or an admin ended us
)


async def create_pool(
    database_url: str,
    min_size: int = 1,
    max_size: int = 10,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    """A pool whose connections start with `server_settings` (kept across the pool's resets)."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=30,
        server_settings=server_settings,
    )
    assert pool is not None
    return pool
