"""An app served by uvicorn on a free local port, in the test's event loop: for what the
in-process ASGI transport cannot do (it buffers whole responses, so no event streams)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn

START_DEADLINE = 10.0


@contextlib.asynccontextmanager
async def serving(app: object) -> AsyncIterator[str]:
    """The app's base URL while it is served."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        timeout_graceful_shutdown=2,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(START_DEADLINE):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
