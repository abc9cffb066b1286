import json
import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from shared.logs import JsonLines, RequestIdMiddleware, request_id
from tests.conftest import asgi_client


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("hb.test", logging.WARNING, __file__, 1, message, None, None)


def test_log_lines_are_json_with_level_logger_and_message():
    line = json.loads(JsonLines().format(_record("flush failed")))
    assert line["level"] == "warning"
    assert line["logger"] == "hb.test"
    assert line["message"] == "flush failed"
    assert line["ts"].endswith("Z")
    assert "requestId" not in line


async def test_request_id_is_echoed_and_attached_to_log_lines():
    seen: list[str | None] = []

    async def endpoint(request: Request) -> PlainTextResponse:
        seen.append(json.loads(JsonLines().format(_record("inside"))).get("requestId"))
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", endpoint)], middleware=[Middleware(RequestIdMiddleware)])
    async for client in asgi_client(app):
        given = await client.get("/", headers={"X-Request-Id": "abc-123"})
        made = await client.get("/")
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 16
    assert seen == ["abc-123", made.headers["x-request-id"]]
    assert request_id.get() is None
