"""The JSON answers to framework-level errors, and the methods a 405 offers."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from shared.web.exception_handlers import EXCEPTION_HANDLERS


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def client() -> httpx.AsyncClient:
    app = Starlette(
        routes=[
            Route("/things", ok, methods=["GET"]),
            Route("/things", ok, methods=["POST"]),
            Route("/things/{id}", ok, methods=["GET"]),
            Route("/things/{id}", ok, methods=["DELETE"]),
            Route("/other", ok, methods=["PUT"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_405_allows_every_method_routed_on_the_path() -> None:
    async with client() as c:
        r = await c.put("/things")
        assert r.status_code == 405
        assert r.json()["error"] == "method_not_allowed"
        assert r.headers["allow"] == "GET, HEAD, POST"
        r = await c.patch("/things/42")
        assert (r.status_code, r.headers["allow"]) == (405, "DELETE, GET, HEAD")
        r = await c.get("/other")
        assert (r.status_code, r.headers["allow"]) == (405, "PUT")


async def test_each_method_of_a_shared_path_reaches_its_route() -> None:
    async with client() as c:
        for method in ("GET", "HEAD", "POST"):
            assert (await c.request(method, "/things")).status_code == 200, method
        assert (await c.delete("/things/1")).status_code == 200
