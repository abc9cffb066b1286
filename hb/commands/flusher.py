"""`hb flusher`: run the flusher's arq worker (as `arq flusher.worker.WorkerSettings` would)."""

from __future__ import annotations

import argparse
import logging

from flusher.worker import run_until_stopped
from shared.logs import configure_logging
from shared.settings import load_settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="log every job run")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(require_token_keys=False)  # a bad variable fails here, by name
    configure_logging(settings.log_level)
    if not args.verbose:  # arq logs each cron run at info: one line every flush interval
        logging.getLogger("arq").setLevel(logging.WARNING)
    run_until_stopped(settings)
    return 0
