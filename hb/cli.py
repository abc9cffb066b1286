"""`hb`: one command line for every part of the system.

Each subcommand lives in the module named below, which defines `configure(parser)` and
`run(args) -> int`; modules are imported only when their subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from shared.settings import SettingsError

COMMANDS = {
    "migrate": ("hb.commands.migrate", "apply the Postgres migrations"),
    "ingest": ("hb.commands.ingest", "run the ingest service (uvicorn)"),
    "api": ("hb.commands.api", "run the read and management API (uvicorn)"),
    "flusher": ("hb.commands.flusher", "run the flusher (arq worker)"),
    "admin": ("hb.commands.admin", "bootstrap organizations, users, sessions and API keys"),
    "dev": ("hb.commands.dev", "run everything on embedded Redis and Postgres"),
    "simulate": ("hb.commands.simulate", "a fleet of simulated workers beating"),
    "events": ("hb.commands.events", "the fleet's events, or followed live (--follow)"),
}


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="hb", description="Heartbeat control plane")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not args_list or args_list[0] in ("-h", "--help") or args_list[0] not in COMMANDS:
        parser.parse_args(args_list)  # prints help or a clear error and exits
        return 2
    name = args_list[0]
    module = importlib.import_module(COMMANDS[name][0])
    command_parser = argparse.ArgumentParser(prog=f"hb {name}", description=COMMANDS[name][1])
    module.configure(command_parser)
    args = command_parser.parse_args(args_list[1:])
    try:
        return int(module.run(args) or 0)
    except SettingsError as exc:
        print(f"hb {name}: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
