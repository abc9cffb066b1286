"""The HTTP protocol of both services sends a response's head and body in one write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from shared.web.http_protocol import CoalescingHttpToolsProtocol

BODY = b'{"ok":true}'


async def json_app(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    request = await receive()
    body = BODY + request.get("body", b"")
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RecordingTransport(asyncio.Transport):
    """What the socket would have been asked to send, one entry per write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.written = asyncio.Event()
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")
        self.written.set()

    def close(self) -> None:
        self.closed = True
        self.events.append("close")

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    async def next_write(self) -> bytes:
        await asyncio.wait_for(self.written.wait(), 5)
        self.written.clear()
        return self.writes[-1]


@pytest.fixture
async def connection() -> tuple[CoalescingHttpToolsProtocol, RecordingTransport]:
    config = Config(app=json_app, lifespan="off", log_level="warning")
    protocol = CoalescingHttpToolsProtocol(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


def post(body: bytes, *headers: bytes) -> bytes:
    head = b"POST /beat HTTP/1.1\r\nhost: test\r\ncontent-length: %d\r\n" % len(body)
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


async def test_each_response_is_one_write_with_head_and_body(connection):
    protocol, transport = connection
    for n in range(3):  # keep-alive: one connection, one write per response
        protocol.data_received(post(b""))
        response = await transport.next_write()
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert response.endswith(b"\r\n\r\n" + BODY)
        assert len(transport.writes) == n + 1
    protocol.connection_lost(None)


async def test_expect_100_continue_is_sent_before_the_body_is_awaited(connection):
    protocol, transport = connection
    request = post(b"[1]", b"expect: 100-continue")
    head, body = request.split(b"\r\n\r\n", 1)
    protocol.data_received(head + b"\r\n\r\n")
    assert await transport.next_write() == b"HTTP/1.1 100 Continue\r\n\r\n"
    protocol.data_received(body)
    assert (await transport.next_write()).endswith(BODY + b"[1]")
    protocol.connection_lost(None)


async def test_a_closing_connection_sends_what_is_pending_before_it_closes(connection):
    protocol, transport = connection
    protocol.data_received(post(b"", b"connection: close"))
    response = await transport.next_write()
    assert response.endswith(BODY)
    assert transport.events == ["write", "close"]
