"""Thin request and response helpers shared by the API's routes."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from api.error_responses import invalid_body
from shared.contract.wire import encoder

T = TypeVar("T")
CLIENT_CLOSED_REQUEST = 499


class JSON(Response):
    """A JSON response encoded by msgspec, so stored JSON (`msgspec.Raw`) passes through as is."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encoder.encode(content)


class BodyError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def decode_body(request: Request, decoder: msgspec.json.Decoder[T], limit: int) -> T:
    """The body decoded and validated, or BodyError carrying the 400/413 to answer (a 499 when
    the caller is gone)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyError(
                    JSONResponse(
                        {"error": "payload_too_large", "message": "The request body is too large."},
                        status_code=413,
                    )
                )
            chunks.append(chunk)
    except ClientDisconnect:
        # The caller hung up before its body was complete: nothing failed here and nobody is
        # left to read an answer. The 499 (nginx's "client closed request") goes nowhere.
        raise BodyError(Response(status_code=CLIENT_CLOSED_REQUEST)) from None
    try:
        return decoder.decode(b"".join(chunks))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BodyError(invalid_body(exc)) from None
