"""`hb migrate`: apply pending Postgres migrations (safe to run from several processes)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from hb.postgres_failures import POSTGRES_FAILURES, describe
from shared.postgres.migrate import migrate
from shared.settings import PREFIX, Settings, check_database_url

VARIABLE = PREFIX + "DATABASE_URL"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help=f"Postgres URL (default: ${VARIABLE})")


def run(args: argparse.Namespace) -> int:
    if args.database_url is not None:
        url = check_database_url("--database-url", args.database_url.strip())
    else:
        raw = os.environ.get(VARIABLE, Settings().database_url).strip()
        url = check_database_url(VARIABLE, raw)  # SettingsError: exit 2, naming the variable
    try:
        applied = asyncio.run(migrate(url))
    except POSTGRES_FAILURES as exc:
        print(f"hb migrate: {describe(exc, url)}", file=sys.stderr)
        return 1
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0
