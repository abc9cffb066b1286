"""`POST /v1/workers/{id}/activity-heartbeat` (Den): id, body, token, worker, in that order."""

from __future__ import annotations

import msgspec
from starlette.types import Receive, Scope, Send

from ingest import error_bodies
from ingest.asgi_io import BodyTooLarge, bearer, header, is_json, read_body, send_response
from ingest.state import IngestState
from shared.contract import typeid
from shared.contract.record import DenBeat
from shared.contract.times import format_ms, now_ms, parse_ms
from shared.contract.wire import WorkerHeartbeatResponse, den_decoder, encoder, error_location
from shared.redis.connect import REDIS_DOWN

ID_MESSAGE = "Expected a Den TypeID with 'wrk_' prefix and a 26-character base32 suffix."
DEN_TOKEN_HEADER = b"x-den-worker-heartbeat-token"
TIME_MESSAGE = "Expected a UTC date-time with ASCII digits, e.g. 2024-01-01T10:00:00Z."


class DenHeartbeatRoute:
    def __init__(self, state: IngestState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        worker_id: str = scope["path_params"]["id"]
        if not typeid.is_valid(worker_id, typeid.WORKER):
            return await send_response(send, 400, error_bodies.den_invalid(ID_MESSAGE, ["id"]))
        try:
            body = await read_body(receive, state.settings.max_body_bytes)
        except BodyTooLarge:
            return await send_response(send, 413, error_bodies.DEN_TOO_LARGE)
        if not is_json(scope):
            message = "Content-Type must be application/json."
            return await send_response(send, 400, error_bodies.den_invalid(message, []))
        try:
            beat = den_decoder.decode(body)
        except msgspec.ValidationError as exc:
            message, path = error_location(exc)
            return await send_response(send, 400, error_bodies.den_invalid(message, path))
        except (msgspec.DecodeError, RecursionError):
            message = "The request body is not valid JSON."
            return await send_response(send, 400, error_bodies.den_invalid(message, []))
        # To Python's `re` the contract's pattern admits any Unicode digit (see
        # `times.parse_ms`): what the parser refuses is an invalid body too, answered before the
        # token like the rest.
        field = "sentAt"
        try:
            sent = None if beat.sentAt is msgspec.UNSET else parse_ms(beat.sentAt)
            field = "lastActivityAt"
            reported = beat.lastActivityAt
            reported_ms = parse_ms(reported) if isinstance(reported, str) else None
        except ValueError:
            return await send_response(send, 400, error_bodies.den_invalid(TIME_MESSAGE, [field]))

        token = bearer(scope) or (header(scope, DEN_TOKEN_HEADER) or b"").decode("latin-1")
        claim = state.verify_token(token) if token else None
        if claim is None or claim.worker_id != worker_id:
            state.metrics.rejected("unauthorized")
            return await send_response(send, 401, error_bodies.DEN_UNAUTHORIZED)

        # The server's clock decides: client times in the future are clamped to receive time.
        now = now_ms()
        heartbeat, skew = now, None
        if sent is not None:
            heartbeat, skew = min(sent, now), sent - now
        active = None
        if beat.isActiveRecently:
            active = heartbeat if reported_ms is None else reported_ms
            if active > now:
                if skew is None:
                    skew = active - now
                active = now
        record = DenBeat(
            worker_id, claim.version, heartbeat, active, beat.isActiveRecently,
            None if beat.openSessionCount is msgspec.UNSET else beat.openSessionCount, skew,
        )  # fmt: skip
        try:
            result = await state.committer.submit(record)
        except REDIS_DOWN as exc:
            state.unavailable(exc)
            return await send_response(send, 503, error_bodies.DEN_UNAVAILABLE, state.retry_after)
        if state.redis_failing:
            state.available()
        if result.code != 200:
            if result.code == 503:  # the registry is being rebuilt
                state.metrics.rejected("registry_rebuilding")
                return await send_response(
                    send, 503, error_bodies.DEN_UNAVAILABLE, state.retry_after
                )
            state.metrics.rejected("not_found" if result.code == 404 else "revoked")
            if result.code == 404:
                return await send_response(send, 404, error_bodies.DEN_NOT_FOUND)
            return await send_response(send, 401, error_bodies.DEN_UNAUTHORIZED)
        state.metrics.accepted("den")
        response = WorkerHeartbeatResponse(
            ok=True,
            workerId=worker_id,
            isActiveRecently=result.active_recently == b"1",
            openSessionCount=int(result.open_sessions) if result.open_sessions else None,
            lastHeartbeatAt=format_ms(int(result.heartbeat_ms)),
            lastActiveAt=format_ms(int(result.active_ms)) if result.active_ms else None,
        )
        await send_response(send, 200, encoder.encode(response))
