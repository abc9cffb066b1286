"""`hb ingest`: serve the ingest app with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import argparse

import uvicorn

from shared.logs import configure_logging
from shared.settings import load_settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()  # fail fast with a message that names the bad variable
    configure_logging(settings.log_level)
    uvicorn.run(
        "ingest.app:app", host=args.host, port=args.port, workers=args.workers,
        loop="uvloop", http="httptools", access_log=False, log_config=None,
        proxy_headers=False,  # ingest never reads the client address: skip that middleware
    )  # fmt: skip
    return 0
