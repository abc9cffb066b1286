"""`/`: the fleet page, a small HTML + CSS + JavaScript client of the read API.

Its files ship in the package: the script and styles in `api/static/`, served under
`/fleet-assets`, and the page's template in `api/templates/`, served only rendered. Nothing is
built at install time or fetched from another origin, and the Content-Security-Policy holds the
page to its own origin. The page keeps the caller's credential in the tab's `sessionStorage`
and sends it as a header (never in a URL), including on the event stream, which it reads with
fetch() since EventSource cannot send headers.
"""

from __future__ import annotations

import html
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

ASSETS = "/fleet-assets"

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",  # the API itself, and its event stream
    "base-uri 'none'",
    "form-action 'none'",  # the sign-in form is handled by the script
    "frame-ancestors 'none'",
])  # fmt: skip
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _static() -> str:
    return str(files("api") / "static")


def fleet_routes() -> list[BaseRoute]:
    """GET / (the page) and its files under /fleet-assets. URLs on the page carry the server's
    root path, so it works behind a proxy that mounts the service."""
    # The page's template is kept out of the static folder: only the rendered page is served.
    template = (files("api") / "templates" / "fleet.html").read_text(encoding="utf-8")

    async def page(request: Request) -> Response:
        root = html.escape(request.scope.get("root_path", "").rstrip("/"))
        body = template.replace("{root}", root).replace("{assets}", ASSETS)
        return HTMLResponse(body, headers=HEADERS)

    assets = StaticFiles(directory=_static())
    return [Route("/", page, methods=["GET"]), Mount(ASSETS, assets, name="fleet-assets")]
