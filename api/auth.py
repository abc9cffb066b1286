"""Who is calling: a session token (`Authorization: Bearer`) or an org API key (`x-api-key`).

Both are random secrets stored as their SHA-256. The read routes resolve the caller inside their
page statement (`CALLER` as a CTE), so a read costs one round trip; management routes call
`require_caller`.
"""

from __future__ import annotations

from typing import NamedTuple

import asyncpg
from starlette.requests import Request

from shared.contract.tokens import hash_secret

# A session counts only while it is unexpired, unrevoked and its user still a member of its org.
CALLER = """
WITH caller AS (
    SELECT s.org_id, s.user_id FROM sessions s
      JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
     WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
    UNION ALL
    SELECT org_id, NULL FROM api_keys WHERE key_hash = $2 AND revoked_at IS NULL
    LIMIT 1
)"""


class Credential(NamedTuple):
    """Hashes of the presented secrets; at most one of them is set."""

    session_hash: str | None
    api_key_hash: str | None


class Caller(NamedTuple):
    org_id: str
    user_id: str | None  # None for an API key


async def authenticate(
    conn: asyncpg.Connection | asyncpg.Pool, credential: Credential
) -> Caller | None:
    row = await conn.fetchrow(
        f"{CALLER} SELECT org_id, user_id FROM caller",
        credential.session_hash, credential.api_key_hash,
    )  # fmt: skip
    return None if row is None else Caller(row["org_id"], row["user_id"])


def caller_of(row: asyncpg.Record) -> Caller:
    return Caller(row["caller_org_id"], row["caller_user_id"])


def credential_of(request: Request) -> Credential | None:
    """The hashed credential presented, or None when there is none; a session wins over a key."""
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        return Credential(hash_secret(token), None)
    api_key = request.headers.get("x-api-key", "").strip()
    if api_key:
        return Credential(None, hash_secret(api_key))
    return None


async def require_caller(request: Request, pool: asyncpg.Pool) -> Caller | None:
    """The caller of a management route (one Postgres lookup), or None for a 401."""
    credential = credential_of(request)
    if credential is None:
        return None
    return await authenticate(pool, credential)
