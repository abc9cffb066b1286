"""Plain-ASGI request and response helpers for the hot routes (no Request/Response objects)."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Receive, Scope, Send

JSON_HEADERS = [(b"content-type", b"application/json")]


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def is_json(scope: Scope) -> bool:
    ctype = header(scope, b"content-type")
    if ctype is None:
        return False
    media = ctype.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


def bearer(scope: Scope) -> str | None:
    value = header(scope, b"authorization")
    if value is None or len(value) < 8 or value[:7].lower() != b"bearer ":
        return None
    return value[7:].strip().decode("latin-1")


async def send_response(
    send: Send,
    status: int,
    body: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    all_headers = [*JSON_HEADERS, *headers] if body else list(headers)
    all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})
