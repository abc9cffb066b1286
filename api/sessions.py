"""`DELETE /v1/session`: a signed-in user ends their own session (say, at sign-out)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import error_responses, management
from api.auth import credential_of, require_caller
from api.state import ApiState

API_KEY_ENDS_NOTHING = "An API key has no session to end; revoke the key instead."


async def end_session(request: Request) -> Response:
    state: ApiState = request.app.state.api
    credential = credential_of(request)
    caller = await require_caller(request, state.pool)
    if credential is None or caller is None:
        return error_responses.unauthorized()
    if credential.session_hash is None:
        return error_responses.forbidden(API_KEY_ENDS_NOTHING)
    await management.revoke_session(state.pool, credential.session_hash)
    return Response(status_code=204)
