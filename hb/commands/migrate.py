"""`hb migrate`: apply pending Postgres migrations (safe to run from several processes)."""

from __future__ import annotations

import argparse
import asyncio
import os

from shared.postgres.migrate import migrate
from shared.settings import PREFIX, Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get(PREFIX + "DATABASE_URL", Settings().database_url),
        help="Postgres URL (default: $HB_DATABASE_URL)",
    )


def run(args: argparse.Namespace) -> int:
    applied = asyncio.run(migrate(args.database_url))
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0
