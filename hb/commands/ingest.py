"""`hb ingest`: serve the ingest app with uvicorn."""

from __future__ import annotations

import argparse

from hb.serving import add_server_arguments, serve


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser, port=8080)


def run(args: argparse.Namespace) -> int:
    # Ingest never reads the client address: skip uvicorn's proxy-headers middleware.
    return serve("ingest.app:app", args, proxy_headers=False)
