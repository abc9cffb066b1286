"""`/docs`: Swagger UI on the service's own `/openapi.json`.

The UI's scripts and styles come from the swagger-ui-py package and are served under
`/docs/assets`, so the page loads nothing from another origin; its Content-Security-Policy
holds it to that.
"""

from __future__ import annotations

import base64
import hashlib
import html
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

ASSETS = "/docs/assets"

# The page's one inline script, allowed by its hash. It reads the document's URL from the page,
# so the script (and the hash) stay the same under any root path.
INIT = (
    "window.ui = SwaggerUIBundle({url: document.getElementById('swagger-ui').dataset.url, "
    "dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null});"
)
_INIT_HASH = base64.b64encode(hashlib.sha256(INIT.encode()).digest()).decode()

CSP = "; ".join([
    "default-src 'none'",
    f"script-src 'self' 'sha256-{_INIT_HASH}'",
    "style-src 'self'",
    "img-src 'self' data:",  # the stylesheet draws its icons as data: URLs
    "connect-src 'self'",  # the document, and "Try it out"
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])  # fmt: skip
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{root}{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{root}{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-url="{root}/openapi.json"></div>
<script src="{root}{assets}/swagger-ui-bundle.js"></script>
<script>{init}</script>
</body>
</html>
"""


def docs_routes(title: str) -> list[BaseRoute]:
    """GET /docs, titled `title`, and the UI's assets under /docs/assets. URLs on the page
    carry the server's root path, so it works behind a proxy that mounts the service."""
    dist = StaticFiles(directory=str(files("swagger_ui") / "static"))

    async def docs(request: Request) -> Response:
        page = PAGE.format(
            title=html.escape(title),
            root=html.escape(request.scope.get("root_path", "").rstrip("/")),
            assets=ASSETS,
            init=INIT,
        )
        return HTMLResponse(page, headers=HEADERS)

    return [Route("/docs", docs, methods=["GET"]), Mount(ASSETS, dist, name="docs-assets")]
