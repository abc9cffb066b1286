"""`POST /api/v1/workers/heartbeat`, Kubiya's contract: 204 only once Redis holds the beat.

Also what Kubiya's three routes share (`ingest.kubiya_worker_route` has the per-worker ones):
the body's decoding into 422s, the bounds of what Postgres can store, the credentials and the
answer to a recorded beat.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec
from starlette.types import Receive, Scope, Send

from ingest import error_bodies
from ingest.asgi_io import BodyTooLarge, bearer, is_json, read_body, send_response
from ingest.state import IngestState
from shared.contract import typeid
from shared.contract.record import Beat, KubiyaBeat
from shared.contract.times import now_ms
from shared.contract.tokens import API_KEY_PREFIX
from shared.contract.wire import (
    encoder,
    error_location,
    is_missing_field,
    kubiya_decoder,
)
from shared.redis.connect import REDIS_DOWN

CHALLENGE = [(b"www-authenticate", b"Bearer")]

# Postgres holds these fields: text cannot contain NUL and integers are bigints. Refused here,
# because one such beat in a flusher batch would fail every write of that batch.
UNSTORABLE = "Value cannot be stored: NUL characters or an integer beyond 64 bits."
BIGINT = 2**63
NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")

# What the routes hand on: the token's version or the API key's org (exactly one is set).
Credentials = tuple[int | None, str | None]


class Refused(Exception):
    """The request is answered with `body` (a 422, 413 ...) and goes no further."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


async def decode_body(scope: Scope, receive: Receive, state: IngestState, decoder: Any) -> Any:
    """The body decoded by `decoder`, or Refused with Kubiya's 413 or 422."""
    try:
        body = await read_body(receive, state.settings.max_body_bytes)
    except BodyTooLarge:
        raise Refused(413, error_bodies.KUBIYA_TOO_LARGE) from None
    if not is_json(scope):
        message = "Content-Type must be application/json."
        raise Refused(422, error_bodies.kubiya_invalid(["body"], message, "model_attributes_type"))
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message, path = error_location(exc)
        if is_missing_field(exc):
            message, kind = "Field required", "missing"
        else:
            kind = "value_error"
        raise Refused(422, error_bodies.kubiya_invalid(["body", *path], message, kind)) from None
    except (msgspec.DecodeError, RecursionError):
        invalid = error_bodies.kubiya_invalid(["body"], "JSON decode error", "json_invalid")
        raise Refused(422, invalid) from None


def nul_in_json(encoded: bytes) -> bool:
    """The encoder writes NUL as \\u0000 (jsonb refuses it); an even run of backslashes before it
    would make it literal text instead."""
    return b"\\u0000" in encoded and NUL_ESCAPE.search(encoded) is not None


def unstorable_field(
    integers: Iterable[tuple[str, int | None]],
    texts: Iterable[tuple[str, str | None]],
    objects: Iterable[tuple[str, bytes]],
) -> str | None:
    """The first field Postgres could not store: an integer beyond 64 bits, text with a NUL
    character, an encoded JSON object with one."""
    for name, number in integers:
        if number is not None and not -BIGINT <= number < BIGINT:
            return name
    for name, text in texts:
        if text is not None and "\x00" in text:
            return name
    for name, encoded in objects:
        if nul_in_json(encoded):
            return name
    return None


def check_storable(
    integers: Iterable[tuple[str, int | None]],
    texts: Iterable[tuple[str, str | None]],
    objects: Iterable[tuple[str, bytes]],
) -> None:
    field = unstorable_field(integers, texts, objects)
    if field is not None:
        raise Refused(422, error_bodies.kubiya_invalid(["body", field], UNSTORABLE, "value_error"))


def check_count(name: str, count: int) -> None:
    """A count below zero is a 422."""
    if count < 0:
        message = "Input should be greater than or equal to 0"
        invalid = error_bodies.kubiya_invalid(["body", name], message, "greater_than_equal")
        raise Refused(422, invalid)


def check_size(name: str, encoded: bytes, limit: int, what: str = "JSON") -> None:
    """A field larger than the setting allows (every worker's is stored, flushed and served with
    each read) is a 422."""
    if len(encoded) > limit:
        message = f"{name} must encode to at most {limit} bytes of {what}"
        raise Refused(422, error_bodies.kubiya_invalid(["body", name], message, "value_error"))


async def authorize(
    state: IngestState, scope: Scope, send: Send, worker_id: str
) -> Credentials | None:
    """Bearer is the worker's own token or an org API key; None once answered otherwise (401,
    503 while Redis cannot say whose key it is, 404 for a malformed worker id)."""
    credential = bearer(scope)
    if credential is None:
        state.metrics.rejected("unauthorized")
        await send_response(send, 401, error_bodies.KUBIYA_UNAUTHORIZED, CHALLENGE)
        return None
    version: int | None = None
    org: str | None = None
    if credential.startswith(API_KEY_PREFIX):
        try:
            org = await state.api_key_org(credential)
        except REDIS_DOWN as exc:
            state.unavailable(exc)
            await send_response(send, 503, error_bodies.KUBIYA_UNAVAILABLE, state.retry_after)
            return None
        if org is None:
            state.metrics.rejected("unauthorized")
            await send_response(send, 401, error_bodies.KUBIYA_UNAUTHORIZED, CHALLENGE)
            return None
    else:
        claim = state.verify_token(credential)
        if claim is None or claim.worker_id != worker_id:
            state.metrics.rejected("unauthorized")
            await send_response(send, 401, error_bodies.KUBIYA_UNAUTHORIZED, CHALLENGE)
            return None
        version = claim.version
    if not typeid.is_valid(worker_id, typeid.WORKER):
        state.metrics.rejected("not_found")
        await send_response(send, 404, error_bodies.KUBIYA_NOT_FOUND)
        return None
    return version, org


async def record(state: IngestState, send: Send, beat: Beat, contract: str) -> None:
    """Submit `beat` to the group commit and answer: 204 once Redis holds it, else 503 (Redis
    unreachable, or the registry being rebuilt), 404 (unknown, deleted or another org's worker)
    or 401 (a revoked token)."""
    try:
        result = await state.committer.submit(beat)
    except REDIS_DOWN as exc:
        state.unavailable(exc)
        return await send_response(send, 503, error_bodies.KUBIYA_UNAVAILABLE, state.retry_after)
    if state.redis_failing:
        state.available()
    if result.code == 503:  # the registry is being rebuilt
        state.metrics.rejected("registry_rebuilding")
        return await send_response(send, 503, error_bodies.KUBIYA_UNAVAILABLE, state.retry_after)
    if result.code == 404:
        state.metrics.rejected("not_found")
        return await send_response(send, 404, error_bodies.KUBIYA_NOT_FOUND)
    if result.code == 401:
        state.metrics.rejected("revoked")
        return await send_response(send, 401, error_bodies.KUBIYA_UNAUTHORIZED, CHALLENGE)
    state.metrics.accepted(contract)
    await send_response(send, 204)


class KubiyaHeartbeatRoute:
    def __init__(self, state: IngestState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        try:
            beat = await decode_body(scope, receive, state, kubiya_decoder)
            metadata = encoder.encode(beat.worker_metadata)
            check_count("tasks_processed", beat.tasks_processed)
            check_size("worker_metadata", metadata, state.settings.max_metadata_bytes)
            check_storable(
                (("tasks_processed", beat.tasks_processed),),
                (("status", beat.status), ("environment_name", beat.environment_name),
                 ("current_task_id", beat.current_task_id)),
                (("worker_metadata", metadata),),
            )  # fmt: skip
        except Refused as refused:
            return await send_response(send, refused.status, refused.body)
        credentials = await authorize(state, scope, send, beat.worker_id)
        if credentials is None:
            return
        version, org = credentials
        beat_record = KubiyaBeat(
            beat.worker_id, version, org, now_ms(), beat.status, beat.tasks_processed,
            beat.current_task_id, beat.environment_name, metadata.decode(),
        )  # fmt: skip
        await record(state, send, beat_record, "kubiya")
