"""`python -m bench <figure>`: run one benchmark figure and print its table."""

from __future__ import annotations

import argparse
import importlib
import sys

from bench.load import WrkMissing
from bench.servers import TimeLimitExceeded

FIGURES = {
    "ingest": ("bench.ingest_figure", "beats/s and latency of ingest vs bare Starlette (wrk)"),
    "memory": ("bench.memory_figure", "Redis bytes per worker"),
    "flush": ("bench.flush_figure", "workers/s drained from Redis into Postgres"),
    "read": (
        "bench.read_figure",
        "GET /v1/workers?limit=50: requests/s, p50 and p99 at 1, 4, 16 and 64 connections (wrk)",
    ),
    "pgload": ("bench.pgload_figure", "Postgres statements and row writes per 10,000 beats"),
    "fleet": (
        "bench.fleet_figure",
        "fleet queries over one large org: summary and filtered pages at 1 connection, what "
        "the fleet index costs ingest, one sweep's transitions, detection delay",
    ),
    "record": (
        "bench.record_figure",
        "Redis CPU per Den beat of the record script beside plain commands (one redis-server)",
    ),
    "floors": (
        "bench.floors_figure",
        "Redis CPU per beat of single commands (writes, reads, the fleet index, a script call)"
        " beside plain commands",
    ),
    "scale": (
        "bench.scale_figure",
        "N ingest processes behind one Redis or a Redis Cluster: beats/s, latency, CPU per beat",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="figure", metavar="FIGURE", required=True)
    for name, (module_name, help_text) in FIGURES.items():
        module = importlib.import_module(module_name)
        module.configure(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    module = importlib.import_module(FIGURES[args.figure][0])
    try:
        return int(module.run(args))
    except WrkMissing as exc:
        print(f"bench {args.figure}: {exc}", file=sys.stderr)
        return 2
    except TimeLimitExceeded as exc:
        print(f"bench {args.figure}: stopped: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
