"""/docs on both services: Swagger UI on the service's own document, every asset served by the
service itself, under a strict Content-Security-Policy."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from api.app import create_app as create_api
from ingest.app import create_app as create_ingest
from shared.settings import Settings
from shared.web.docs import docs_routes
from tests.conftest import asgi_client, make_settings

APPS: dict[str, Callable[[Settings], Starlette]] = {"ingest": create_ingest, "api": create_api}


class Page(HTMLParser):
    """The URLs a page loads (tag, rel, url), its inline scripts and its elements' data-url."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.loads: list[tuple[str, str, str]] = []
        self.inline_scripts: list[str] = []
        self.data_urls: list[str] = []
        self._in_inline_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        for name in ("src", "href"):
            if name in found:
                self.loads.append((tag, found.get("rel", ""), found[name]))
        if "data-url" in found:
            self.data_urls.append(found["data-url"])
        self._in_inline_script = tag == "script" and "src" not in found

    def handle_data(self, data: str) -> None:
        if self._in_inline_script:
            self.inline_scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_inline_script = False


def directives(csp: str) -> dict[str, list[str]]:
    parsed = (part.split() for part in csp.split(";") if part.strip())
    return {name: sources for name, *sources in parsed}


def hash_source(script: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"


@pytest.fixture(params=sorted(APPS))
async def service(
    request: pytest.FixtureRequest, redis_url: str, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = APPS[request.param](make_settings(redis_url, database_url))
    async for client in asgi_client(app):
        yield client


async def test_docs_is_an_html_page_loading_only_local_assets(service: httpx.AsyncClient) -> None:
    response = await service.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "http://" not in response.text and "https://" not in response.text
    page = Page(response.text)
    kinds = {(tag, rel) for tag, rel, _ in page.loads}
    assert {("script", ""), ("link", "stylesheet")} <= kinds
    for tag, rel, url in page.loads:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url
        assert parts.path.startswith("/docs/assets/"), url
        asset = await service.get(url)
        assert asset.status_code == 200, url
        expected = {"script": "javascript", "stylesheet": "text/css", "icon": "image/png"}
        assert expected[rel or tag] in asset.headers["content-type"], url


async def test_docs_renders_the_services_own_document(service: httpx.AsyncClient) -> None:
    page = Page((await service.get("/docs")).text)
    assert page.data_urls == ["/openapi.json"]
    assert any("SwaggerUIBundle" in script for script in page.inline_scripts)
    document = (await service.get(page.data_urls[0])).json()
    assert document["paths"]["/docs"]["get"]["responses"]["200"]["content"] == {
        "text/html": {"schema": {"type": "string"}}
    }
    assert not any(path.startswith("/docs/assets") for path in document["paths"])


async def test_docs_has_a_strict_content_security_policy(service: httpx.AsyncClient) -> None:
    response = await service.get("/docs")
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = directives(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    # No host, scheme other than data:, wildcard, nonce or 'unsafe-*' keyword anywhere.
    sources = {source for listed in csp.values() for source in listed}
    assert {s for s in sources if not s.startswith("'sha256-")} <= {"'self'", "'none'", "data:"}
    # Each inline script on the page is allowed by its hash, and nothing else inline is.
    hashes = {hash_source(script) for script in Page(response.text).inline_scripts}
    assert hashes and set(csp["script-src"]) == {"'self'"} | hashes


async def test_under_a_root_path_the_page_keeps_to_its_prefix() -> None:
    transport = httpx.ASGITransport(app=Starlette(routes=docs_routes("t")), root_path="/hb")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = Page((await client.get("/docs")).text)
    assert page.data_urls == ["/hb/openapi.json"]
    assert all(url.startswith("/hb/docs/assets/") for _, _, url in page.loads)
