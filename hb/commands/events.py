"""`hb events`: the organization's fleet events, newest first, or followed live (`--follow`,
the API's Server-Sent Events stream, resumed with Last-Event-ID when it ends or drops)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import httpx

RECONNECT_DELAY = 1.0


class EventsError(Exception):
    pass


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--follow", "-f", action="store_true", help="print new events as they come")
    parser.add_argument("--limit", type=int, default=20, help="events listed without --follow")
    parser.add_argument("--type", help="only these types (comma list), without --follow")
    parser.add_argument(
        "--credentials", type=Path, metavar="FILE",
        help="the credentials file written by `hb dev` (API URL and key)",
    )  # fmt: skip
    parser.add_argument("--api-url", help="API base URL (default: from --credentials)")
    parser.add_argument("--api-key", help="org API key (default: from --credentials)")


def _endpoint(args: argparse.Namespace) -> tuple[str, str]:
    creds: dict[str, Any] = {}
    if args.credentials is not None:
        try:
            creds = json.loads(args.credentials.read_text())
        except (OSError, ValueError) as exc:
            raise EventsError(f"cannot read credentials {args.credentials}: {exc}") from None
    api, key = args.api_url or creds.get("apiUrl"), args.api_key or creds.get("apiKey")
    if not (api and key):
        raise EventsError("need --api-url and --api-key, or --credentials FILE from `hb dev`")
    return api.rstrip("/"), key


def event_line(event: dict[str, Any]) -> str:
    data = json.dumps(event.get("data") or {}, separators=(",", ":"))
    return f"{event['at']}  {event['type']:<15} {event['workerId']}  {data}"


async def list_events(
    api: httpx.AsyncClient, key: str, limit: int, types: str | None, out: TextIO
) -> None:
    params: dict[str, Any] = {"limit": limit}
    if types:
        params["type"] = types
    r = await api.get("/v1/events", params=params, headers={"x-api-key": key})
    if r.status_code != 200:
        raise EventsError(f"listing events failed: {r.status_code} {r.text[:200]}")
    for event in r.json()["events"]:
        out.write(event_line(event) + "\n")


async def follow(
    api: httpx.AsyncClient, key: str, out: TextIO, last_id: str | None = None,
    max_events: int | None = None,
) -> str | None:  # fmt: skip
    """Print events as they arrive, reconnecting after the last one seen; returns the last id
    once `max_events` were printed (never, without it)."""
    printed = 0
    while True:
        headers = {"x-api-key": key, "Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            async with api.stream("GET", "/v1/events/stream", headers=headers) as r:
                if r.status_code in (400, 401, 403):
                    raise EventsError(f"the stream was refused: {r.status_code}")
                frame: dict[str, str] = {}
                async for line in r.aiter_lines():
                    if line:
                        if not line.startswith(":"):
                            name, _, value = line.partition(":")
                            frame[name] = value.removeprefix(" ")
                        continue
                    if "data" in frame:
                        out.write(event_line(json.loads(frame["data"])) + "\n")
                        out.flush()
                        last_id = frame.get("id", last_id)
                        printed += 1
                        if max_events is not None and printed >= max_events:
                            return last_id
                    frame = {}
        except httpx.HTTPError as exc:
            print(f"hb events: stream interrupted ({exc}); reconnecting", file=sys.stderr)
        await asyncio.sleep(RECONNECT_DELAY)


async def _run(args: argparse.Namespace) -> None:
    api_url, key = _endpoint(args)
    timeout = httpx.Timeout(10.0, read=None if args.follow else 10.0)
    async with httpx.AsyncClient(base_url=api_url, timeout=timeout) as api:
        if args.follow:
            await follow(api, key, sys.stdout)
        else:
            await list_events(api, key, args.limit, args.type, sys.stdout)


def run(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_run(args))
    except EventsError as exc:
        print(f"hb events: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"hb events: cannot reach the API: {exc}", file=sys.stderr)
        return 1
    return 0
