"""`hb flusher`: run the flusher's arq worker (as `arq flusher.worker.WorkerSettings` would)."""

from __future__ import annotations

import argparse
import logging.config

from arq.logs import default_log_config
from arq.worker import run_worker

from flusher.worker import worker_settings
from shared.settings import load_settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="log every job run")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(require_token_keys=False)  # a bad variable fails here, by name
    config = default_log_config(args.verbose)
    config["loggers"]["hb"] = config["loggers"]["arq"]  # our warnings beside arq's job lines
    logging.config.dictConfig(config)
    run_worker(worker_settings(settings))
    return 0
