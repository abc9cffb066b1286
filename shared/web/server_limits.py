"""Limits every connection of our services keeps to, on top of the one-write protocol.

- A request's line and headers beyond HB_MAX_HEADER_BYTES get 431 and the connection closes:
  httptools would otherwise buffer any amount of header for as long as it keeps coming.
- A request not complete within HB_REQUEST_TIMEOUT of its first byte (or of the connection,
  for one that sends nothing) gets 408 and the connection closes, so an idle or trickling
  client cannot hold a connection; between requests uvicorn's keep-alive timeout applies.
- Concurrent connections per process are uvicorn's `limit_concurrency` (HB_MAX_CONNECTIONS,
  503 beyond it) and bodies are capped by the routes (HB_MAX_BODY_BYTES, 413).

Select it with `uvicorn --http shared.web.server_limits:GuardedHttpToolsProtocol`; `hb ingest`
and `hb api` do.
"""

from __future__ import annotations

import asyncio
import functools

from shared.settings import load_settings
from shared.web.http_protocol import CoalescingHttpToolsProtocol

PROTOCOL_PATH = "shared.web.server_limits:GuardedHttpToolsProtocol"


@functools.cache
def _limits() -> tuple[int, float]:
    settings = load_settings(require_token_keys=False)
    return settings.max_header_bytes, settings.request_timeout


def _response(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(message)).encode() + b"\r\n\r\n"
        + message
    )  # fmt: skip


HEADERS_TOO_LARGE = _response(
    b"431 Request Header Fields Too Large",
    b'{"error":"headers_too_large","message":"The request line and headers are too large."}',
)
TOO_SLOW = _response(
    b"408 Request Timeout",
    b'{"error":"request_timeout","message":"The request did not arrive in time."}',
)


class _HeadersTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(CoalescingHttpToolsProtocol):
    _deadline: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _oversized = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        # A callback's exception reaches uvicorn as a parser error, which it answers 400.
        if self._oversized:
            self.transport.write(HEADERS_TOO_LARGE)
            self.transport.close()
            return
        super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > _limits()[0]:
            self._oversized = True
            raise _HeadersTooLarge

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(_limits()[1], self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # the app has not started
            self.transport.write(TOO_SLOW)
        self.transport.close()
