"""Creating workers, rotating their heartbeat tokens and deleting them.

Postgres first, then the Redis registry. When Redis is down the change stands in Postgres, the
response carries `X-Registry-Sync: pending` and the flusher's reconcile repairs the registry.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import admin, errors
from api.auth import require_caller
from api.bodies import create_worker_decoder
from api.http import JSON, BodyError, decode_body
from api.live_state import merge_live_state, worker_json
from api.state import ApiState
from api.worker_page import WORKER_COLUMNS
from shared import hotstore, typeid
from shared.timefmt import now_ms

PENDING = {"X-Registry-Sync": "pending"}


async def create_worker(request: Request) -> Response:
    state: ApiState = request.app.state.api
    caller = await require_caller(request, state.pool)
    if caller is None:
        return errors.unauthorized()
    try:
        body = await decode_body(request, create_worker_decoder, state.settings.max_body_bytes)
    except BodyError as exc:
        return exc.response
    worker_id, version = await admin.insert_worker(
        state.pool, caller.org_id, body.name.strip(), caller.user_id,
        description=body.description, destination=body.destination,
        image_version=body.imageVersion, workspace_path=body.workspacePath,
        sandbox_backend=body.sandboxBackend,
    )  # fmt: skip
    synced = await admin.sync_registry(
        hotstore.register_worker(
            state.redis, state.settings.shards, worker_id, caller.org_id, version
        ),
        f"worker {worker_id}",
    )
    row = await state.pool.fetchrow(
        f"SELECT {WORKER_COLUMNS} FROM workers w WHERE id = $1", worker_id
    )
    worker = worker_json(row, merge_live_state(row, {}), caller.user_id, now_ms(), state.settings)
    token = admin.heartbeat_token(state.settings, worker_id, version)
    return JSON(
        {"worker": worker, "heartbeatToken": token},
        status_code=201,
        headers=None if synced else PENDING,
    )


async def rotate_heartbeat_token(request: Request) -> Response:
    state: ApiState = request.app.state.api
    worker_id: str = request.path_params["id"]
    if not typeid.is_valid(worker_id, typeid.WORKER):
        return errors.invalid_id(typeid.WORKER)
    caller = await require_caller(request, state.pool)
    if caller is None:
        return errors.unauthorized()
    version = await admin.bump_token_version(state.pool, caller.org_id, worker_id)
    if version is None:
        return errors.worker_not_found()
    synced = await admin.sync_registry(
        hotstore.register_worker(
            state.redis, state.settings.shards, worker_id, caller.org_id, version
        ),
        f"token rotation of {worker_id}",
    )
    body = {
        "workerId": worker_id,
        "heartbeatToken": admin.heartbeat_token(state.settings, worker_id, version),
        "tokenVersion": version,
    }
    return JSON(body, headers=None if synced else PENDING)


async def delete_worker(request: Request) -> Response:
    state: ApiState = request.app.state.api
    worker_id: str = request.path_params["id"]
    if not typeid.is_valid(worker_id, typeid.WORKER):
        return errors.invalid_id(typeid.WORKER)
    caller = await require_caller(request, state.pool)
    if caller is None:
        return errors.unauthorized()
    if not await admin.soft_delete_worker(state.pool, caller.org_id, worker_id):
        return errors.worker_not_found()
    synced = await admin.sync_registry(
        hotstore.unregister_worker(state.redis, state.settings.shards, worker_id),
        f"deletion of {worker_id}",
    )
    return Response(status_code=204, headers=None if synced else PENDING)
