"""Who is calling: a session token (`Authorization: Bearer`) or an org API key (`x-api-key`)."""

from __future__ import annotations

import asyncpg
from starlette.requests import Request

from api.worker_page import Caller, Credential, authenticate
from shared.tokens import hash_secret


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
