"""What `hb migrate` and `hb admin` say when Postgres can't do what they asked: one line.

A command run by hand (or by a deploy job) that fails for a reason outside the program, like a
server that is down or a database not created yet, gets a sentence naming where it looked, not a
traceback.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

# Failures to reach the server at all, as opposed to the server answering with an error.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
)
# Everything `describe` has a sentence for.
POSTGRES_FAILURES = (*UNREACHABLE, asyncpg.PostgresError)


def address(database_url: str) -> str:
    """Where the URL points: host:port (default port 5432), or the socket directory."""
    parts = urlsplit(database_url)
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:
        return ",".join(parse_qs(parts.query).get("host", ["(default)"]))
    named = []
    for host in hosts.split(","):
        name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not colon:
            name, port = host, "5432"
        named.append(f"{unquote(name)}:{port}")
    return ",".join(named)


def describe(exc: BaseException, database_url: str) -> str:
    """One line for a failure of POSTGRES_FAILURES."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    where = address(database_url)
    if isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, UNREACHABLE):
        return f"Postgres at {where} refused: {reason}"
    return f"cannot reach Postgres at {where}: {reason}"
