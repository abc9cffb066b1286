"""Serving one of the web services with uvicorn, the way `hb ingest` and `hb api` do."""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

import uvicorn

from shared.logs import configure_logging
from shared.settings import load_settings
from shared.web.metrics import MULTIPROCESS_DIR
from shared.web.server_limits import PROTOCOL_PATH


def add_server_arguments(parser: argparse.ArgumentParser, port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")


def serve(app: str, args: argparse.Namespace, **uvicorn_options: Any) -> int:
    """Validate the settings (a bad variable fails here, by name), then run uvicorn with uvloop
    and httptools (each response sent in one write, within the server limits), JSON-line logs
    and no access log."""
    settings = load_settings()
    configure_logging(settings.log_level)
    if args.workers > 1 and not os.environ.get(MULTIPROCESS_DIR):
        # Before the worker processes start: each keeps its metrics in a file of this folder,
        # so a scrape answered by any one of them reports all of them.
        metrics_dir = tempfile.TemporaryDirectory(prefix="hb-metrics-")
        os.environ[MULTIPROCESS_DIR] = metrics_dir.name
    uvicorn.run(
        app, host=args.host, port=args.port, workers=args.workers, loop="uvloop",
        http=PROTOCOL_PATH, access_log=False, log_config=None,
        # uvicorn answers 503 once its open connections reach the limit, the new one included.
        limit_concurrency=settings.max_connections + 1, **uvicorn_options,
    )  # fmt: skip
    return 0
