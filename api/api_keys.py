"""Org API keys: create (the secret is shown once), list (never the secret), revoke.

Managing keys needs a signed-in user (a session): a leaked key must not be able to mint more.
"""

from __future__ import annotations

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from api import error_responses, management
from api.auth import Caller, require_caller
from api.bodies import ApiKey, ApiKeyList, CreatedApiKey, create_api_key_decoder
from api.json_io import JSON, BodyError, decode_body
from api.state import ApiState
from api.workers_manage import PENDING
from shared.contract import typeid
from shared.contract.times import format_dt

SESSION_ONLY = "API keys are managed by a signed-in user: use a session token (Bearer)."
KEY_COLUMNS = "id, name, created_by_user_id, created_at, revoked_at"


def api_key_view(row: asyncpg.Record) -> ApiKey:
    revoked = row["revoked_at"]
    return ApiKey(
        row["id"], row["name"], row["created_by_user_id"], format_dt(row["created_at"]),
        format_dt(revoked) if revoked else None,
    )  # fmt: skip


async def _session_caller(request: Request, state: ApiState) -> Caller | Response:
    caller = await require_caller(request, state.pool)
    if caller is None:
        return error_responses.unauthorized()
    if caller.user_id is None:
        return error_responses.forbidden(SESSION_ONLY)
    return caller


async def create_api_key(request: Request) -> Response:
    state: ApiState = request.app.state.api
    caller = await _session_caller(request, state)
    if isinstance(caller, Response):
        return caller
    try:
        body = await decode_body(request, create_api_key_decoder, state.settings.max_body_bytes)
    except BodyError as exc:
        return exc.response
    try:
        new = await management.create_api_key(
            state.pool, state.redis, caller.org_id, body.name.strip(), caller.user_id,
            quota=state.settings.max_api_keys_per_org,
        )  # fmt: skip
    except management.QuotaExceeded as exc:
        return error_responses.quota_exceeded(str(exc))
    row = await state.pool.fetchrow(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1", new.key_id)
    return JSON(
        CreatedApiKey(api_key_view(row), new.secret),
        status_code=201,
        headers=None if new.registry_synced else PENDING,
    )


async def list_api_keys(request: Request) -> Response:
    state: ApiState = request.app.state.api
    caller = await _session_caller(request, state)
    if isinstance(caller, Response):
        return caller
    rows = await state.pool.fetch(
        f"SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC, id DESC",
        caller.org_id,
    )
    return JSON(ApiKeyList([api_key_view(row) for row in rows]))


async def revoke_api_key(request: Request) -> Response:
    state: ApiState = request.app.state.api
    key_id: str = request.path_params["id"]
    if not typeid.is_valid(key_id, typeid.API_KEY):
        return error_responses.invalid_id(typeid.API_KEY)
    caller = await _session_caller(request, state)
    if isinstance(caller, Response):
        return caller
    synced = await management.revoke_api_key(state.pool, state.redis, caller.org_id, key_id)
    if synced is None:
        return error_responses.not_found("api_key_not_found", "API key not found.")
    return Response(status_code=204, headers=None if synced else PENDING)
