"""`hb api`: serve the read and management API with uvicorn."""

from __future__ import annotations

import argparse

from hb.serving import add_server_arguments, serve


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser, port=8081)


def run(args: argparse.Namespace) -> int:
    return serve("api.app:app", args)
