"""`POST /api/v1/workers/heartbeat`, Kubiya's contract: 204 only once Redis holds the beat."""

from __future__ import annotations

import re

import msgspec
from starlette.types import Receive, Scope, Send

from ingest import error_bodies
from ingest.asgi_io import BodyTooLarge, bearer, is_json, read_body, send_response
from ingest.state import IngestState
from shared.contract import typeid
from shared.contract.record import KubiyaBeat
from shared.contract.times import now_ms
from shared.contract.tokens import API_KEY_PREFIX, hash_secret
from shared.contract.wire import (
    WorkerHeartbeatRequest,
    encoder,
    error_location,
    is_missing_field,
    kubiya_decoder,
)
from shared.redis.connect import REDIS_DOWN

CHALLENGE = [(b"www-authenticate", b"Bearer")]

# Postgres holds these fields: text cannot contain NUL and tasks_processed is a bigint. Refused
# here, because one such beat in a flusher batch would fail every write of that batch.
UNSTORABLE = "Value cannot be stored: NUL characters or an integer beyond 64 bits."
BIGINT = 2**63
NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def unstorable_field(beat: WorkerHeartbeatRequest, metadata: bytes) -> str | None:
    if not -BIGINT <= beat.tasks_processed < BIGINT:
        return "tasks_processed"
    for name in ("status", "environment_name", "current_task_id"):
        value = getattr(beat, name)
        if value is not None and "\x00" in value:
            return name
    # The encoder writes NUL as \u0000 (jsonb refuses it); an even run of backslashes before
    # it would make it literal text instead.
    if b"\\u0000" in metadata and NUL_ESCAPE.search(metadata):
        return "worker_metadata"
    return None


def out_of_bounds(beat: WorkerHeartbeatRequest, metadata: bytes, max_metadata: int) -> bytes | None:
    """The 422 body for a count below zero or metadata larger than the setting allows (every
    worker's metadata is stored, flushed and served with each read), else None."""
    if beat.tasks_processed < 0:
        message = "Input should be greater than or equal to 0"
        return error_bodies.kubiya_invalid(
            ["body", "tasks_processed"], message, "greater_than_equal"
        )
    if len(metadata) > max_metadata:
        message = f"worker_metadata must encode to at most {max_metadata} bytes of JSON"
        return error_bodies.kubiya_invalid(["body", "worker_metadata"], message, "value_error")
    return None


class KubiyaHeartbeatRoute:
    def __init__(self, state: IngestState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        try:
            body = await read_body(receive, state.settings.max_body_bytes)
        except BodyTooLarge:
            return await send_response(send, 413, error_bodies.KUBIYA_TOO_LARGE)
        if not is_json(scope):
            invalid = error_bodies.kubiya_invalid(
                ["body"], "Content-Type must be application/json.", "model_attributes_type"
            )
            return await send_response(send, 422, invalid)
        try:
            beat = kubiya_decoder.decode(body)
        except msgspec.ValidationError as exc:
            message, path = error_location(exc)
            if is_missing_field(exc):
                message, kind = "Field required", "missing"
            else:
                kind = "value_error"
            return await send_response(
                send, 422, error_bodies.kubiya_invalid(["body", *path], message, kind)
            )
        except (msgspec.DecodeError, RecursionError):
            invalid = error_bodies.kubiya_invalid(["body"], "JSON decode error", "json_invalid")
            return await send_response(send, 422, invalid)
        metadata = encoder.encode(beat.worker_metadata)
        invalid_value = out_of_bounds(beat, metadata, state.settings.max_metadata_bytes)
        if invalid_value is not None:
            return await send_response(send, 422, invalid_value)
        unstorable = unstorable_field(beat, metadata)
        if unstorable is not None:
            invalid = error_bodies.kubiya_invalid(["body", unstorable], UNSTORABLE, "value_error")
            return await send_response(send, 422, invalid)

        credential = bearer(scope)
        version: int | None = None
        org: str | None = None
        if credential is None:
            state.metrics.rejected("unauthorized")
            return await send_response(send, 401, error_bodies.KUBIYA_UNAUTHORIZED, CHALLENGE)
        if credential.startswith(API_KEY_PREFIX):
            try:
                found = await state.api_key_org(hash_secret(credential))
            except REDIS_DOWN:
                state.metrics.rejected("unavailable")
                return await send_response(
                    send, 503, error_bodies.KUBIYA_UNAVAILABLE, state.retry_after
                )
            if found is None:
                state.metrics.rejected("unauthorized")
                return await send_response(send, 401, error_bodies.KUBIYA_UNAUTHORIZED, CHALLENGE)
            org = found
        else:
            claim = state.verify_token(credential)
            if claim is None or claim.worker_id != beat.worker_id:
                state.metrics.rejected("unauthorized")
                return await send_response(send, 401, error_bodies.KUBIYA_UNAUTHORIZED, CHALLENGE)
            version = claim.version
        if not typeid.is_valid(beat.worker_id, typeid.WORKER):
            state.metrics.rejected("not_found")
            return await send_response(send, 404, error_bodies.KUBIYA_NOT_FOUND)

        record = KubiyaBeat(
            beat.worker_id, version, org, now_ms(), beat.status, beat.tasks_processed,
            beat.current_task_id, beat.environment_name, metadata.decode(),
        )  # fmt: skip
        try:
            result = await state.committer.submit(record)
        except REDIS_DOWN:
            state.metrics.rejected("unavailable")
            return await send_response(
                send, 503, error_bodies.KUBIYA_UNAVAILABLE, state.retry_after
            )
        if result.code == 503:  # the registry is being rebuilt
            state.metrics.rejected("registry_rebuilding")
            return await send_response(
                send, 503, error_bodies.KUBIYA_UNAVAILABLE, state.retry_after
            )
        if result.code == 404:
            state.metrics.rejected("not_found")
            return await send_response(send, 404, error_bodies.KUBIYA_NOT_FOUND)
        if result.code == 401:
            state.metrics.rejected("revoked")
            return await send_response(send, 401, error_bodies.KUBIYA_UNAUTHORIZED, CHALLENGE)
        state.metrics.accepted("kubiya")
        await send_response(send, 204)
