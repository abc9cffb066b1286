"""`POST /v1/workers/{id}/activity-heartbeat` (Den): id, body, token, worker, in that order."""

from __future__ import annotations

import msgspec
from starlette.types import Receive, Scope, Send

from ingest import errors
from ingest.asgi_io import BodyTooLarge, bearer, header, is_json, read_body, send_response
from ingest.group_commit import Beat
from ingest.state import IngestState
from shared import hotstore, typeid
from shared.redis_conn import REDIS_DOWN
from shared.timefmt import format_ms, now_ms, parse_ms
from shared.wire import DenHeartbeatResponse, den_decoder, encoder, error_location

ID_MESSAGE = "Expected a Den TypeID with 'wrk_' prefix and a 26-character base32 suffix."
DEN_TOKEN_HEADER = b"x-den-worker-heartbeat-token"


class DenHeartbeatRoute:
    def __init__(self, state: IngestState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        worker_id: str = scope["path_params"]["id"]
        if not typeid.is_valid(worker_id, typeid.WORKER):
            return await send_response(send, 400, errors.den_invalid(ID_MESSAGE, ["id"]))
        try:
            body = await read_body(receive, state.settings.max_body_bytes)
        except BodyTooLarge:
            return await send_response(send, 413, errors.DEN_TOO_LARGE)
        if not is_json(scope):
            message = "Content-Type must be application/json."
            return await send_response(send, 400, errors.den_invalid(message, []))
        try:
            beat = den_decoder.decode(body)
        except msgspec.ValidationError as exc:
            message, path = error_location(exc)
            return await send_response(send, 400, errors.den_invalid(message, path))
        except (msgspec.DecodeError, RecursionError):
            message = "The request body is not valid JSON."
            return await send_response(send, 400, errors.den_invalid(message, []))
        sessions = beat.openSessionCount
        if type(sessions) is float:  # JSON Schema's integer includes 2.0; 2.5 is not one
            if not sessions.is_integer():
                invalid = errors.den_invalid("Expected `int`, got `float`", ["openSessionCount"])
                return await send_response(send, 400, invalid)
            sessions = int(sessions)

        token = bearer(scope) or (header(scope, DEN_TOKEN_HEADER) or b"").decode("latin-1")
        claim = state.verify_token(token) if token else None
        if claim is None or claim.worker_id != worker_id:
            state.metrics.rejected("unauthorized")
            return await send_response(send, 401, errors.DEN_UNAUTHORIZED)

        # The server's clock decides: client times in the future are clamped to receive time.
        now = now_ms()
        heartbeat, skew = now, ""
        if beat.sentAt is not msgspec.UNSET:
            sent = parse_ms(beat.sentAt)
            heartbeat, skew = min(sent, now), str(sent - now)
        active = ""
        if beat.isActiveRecently:
            reported = beat.lastActivityAt
            at = parse_ms(reported) if isinstance(reported, str) else heartbeat
            if at > now:
                if not skew:
                    skew = str(at - now)
                at = now
            active = str(at)
        shard = hotstore.shard_of(worker_id, state.settings.shards)
        args = [
            worker_id, str(claim.version), "", str(heartbeat), active,
            "1" if beat.isActiveRecently else "0",
            "" if sessions is msgspec.UNSET else str(sessions), skew,
            "d",
        ]  # fmt: skip
        try:
            result = await state.committer.submit(
                Beat(shard, hotstore.worker_prefix(shard) + worker_id, args)
            )
        except REDIS_DOWN:
            state.metrics.rejected("unavailable")
            return await send_response(send, 503, errors.DEN_UNAVAILABLE, state.retry_after)
        if result.code != 200:
            state.metrics.rejected("not_found" if result.code == 404 else "revoked")
            if result.code == 404:
                return await send_response(send, 404, errors.DEN_NOT_FOUND)
            return await send_response(send, 401, errors.DEN_UNAUTHORIZED)
        state.metrics.accepted("den")
        response = DenHeartbeatResponse(
            ok=True,
            workerId=worker_id,
            isActiveRecently=result.active_recently == b"1",
            openSessionCount=int(result.open_sessions) if result.open_sessions else None,
            lastHeartbeatAt=format_ms(int(result.heartbeat_ms)),
            lastActiveAt=format_ms(int(result.active_ms)) if result.active_ms else None,
        )
        await send_response(send, 200, encoder.encode(response))
