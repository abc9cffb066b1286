"""Creating workers, rotating their heartbeat tokens and deleting them.

Postgres first, then the Redis registry. When Redis is down the change stands in Postgres, the
response carries `X-Registry-Sync: pending` and the flusher's reconcile repairs the registry.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import error_responses, management
from api.auth import require_caller
from api.bodies import CreatedWorker, RotatedToken, create_worker_decoder
from api.json_io import JSON, BodyError, decode_body
from api.state import ApiState
from api.worker_queries import WORKER_COLUMNS
from api.worker_view import NO_LIVE_FIELDS, worker_view
from shared.contract import typeid
from shared.contract.times import now_ms

PENDING = {"X-Registry-Sync": "pending"}


async def create_worker(request: Request) -> Response:
    state: ApiState = request.app.state.api
    caller = await require_caller(request, state.pool)
    if caller is None:
        return error_responses.unauthorized()
    try:
        body = await decode_body(request, create_worker_decoder, state.settings.max_body_bytes)
    except BodyError as exc:
        return exc.response
    try:
        new = await management.create_worker(
            state.pool, state.redis, state.settings, caller.org_id, body.name.strip(),
            caller.user_id, description=body.description, destination=body.destination,
            image_version=body.imageVersion, workspace_path=body.workspacePath,
            sandbox_backend=body.sandboxBackend,
        )  # fmt: skip
    except management.QuotaExceeded as exc:
        return error_responses.quota_exceeded(str(exc))
    row = await state.pool.fetchrow(
        f"SELECT {WORKER_COLUMNS} FROM workers w WHERE id = $1", new.worker_id
    )
    worker = worker_view(row, NO_LIVE_FIELDS, caller.user_id, now_ms(), state.settings)
    return JSON(
        CreatedWorker(worker, new.heartbeat_token),
        status_code=201,
        headers=None if new.registry_synced else PENDING,
    )


async def rotate_heartbeat_token(request: Request) -> Response:
    state: ApiState = request.app.state.api
    worker_id: str = request.path_params["id"]
    if not typeid.is_valid(worker_id, typeid.WORKER):
        return error_responses.invalid_id(typeid.WORKER)
    caller = await require_caller(request, state.pool)
    if caller is None:
        return error_responses.unauthorized()
    rotated = await management.rotate_worker_token(
        state.pool, state.redis, state.settings, caller.org_id, worker_id
    )
    if rotated is None:
        return error_responses.worker_not_found()
    body = RotatedToken(worker_id, rotated.heartbeat_token, rotated.token_version)
    return JSON(body, headers=None if rotated.registry_synced else PENDING)


async def delete_worker(request: Request) -> Response:
    state: ApiState = request.app.state.api
    worker_id: str = request.path_params["id"]
    if not typeid.is_valid(worker_id, typeid.WORKER):
        return error_responses.invalid_id(typeid.WORKER)
    caller = await require_caller(request, state.pool)
    if caller is None:
        return error_responses.unauthorized()
    synced = await management.delete_worker(
        state.pool, state.redis, state.settings, caller.org_id, worker_id
    )
    if synced is None:
        return error_responses.worker_not_found()
    return Response(status_code=204, headers=None if synced else PENDING)
