"""Reading request bodies: a caller that hangs up mid-body is not an error of the service."""

from __future__ import annotations

import logging

from starlette.types import Message

from api.app import create_app


async def test_a_client_gone_mid_body_is_not_logged_as_an_error(settings, tenant, caplog):
    app = create_app(settings)
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"name": "half', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/workers", "raw_path": b"/v1/workers", "root_path": "",
        "query_string": b"", "server": ("test", 80), "client": ("127.0.0.1", 1234),
        "headers": [
            (b"host", b"test"), (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {tenant.session}".encode()),
        ],
    }  # fmt: skip
    caplog.set_level(logging.INFO)
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)

    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "unhandled error" not in caplog.text
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert all(m["status"] != 500 for m in starts)
