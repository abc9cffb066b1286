"""`hb admin`: bootstrap organizations, users, sessions, API keys and workers; prints JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import timedelta
from typing import Any

import asyncpg

from api import management
from hb.postgres_failures import POSTGRES_FAILURES, describe
from shared.postgres.pool import create_pool
from shared.redis.connect import connect_redis
from shared.settings import Settings, load_settings


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    org = sub.add_parser("create-org", help="create an organization")
    org.add_argument("name")
    user = sub.add_parser("create-user", help="create a user and make them a member of an org")
    user.add_argument("--org", required=True)
    user.add_argument("--email", required=True)
    user.add_argument("--name")
    user.add_argument("--role", default="member")
    session = sub.add_parser("create-session", help="a session token for a user in an org")
    session.add_argument("--user", required=True)
    session.add_argument("--org", required=True)
    session.add_argument(
        "--ttl", type=float, help="seconds it stays valid (default: $HB_SESSION_TTL)"
    )
    key = sub.add_parser("create-api-key", help="an org API key (the secret is shown once)")
    key.add_argument("--org", required=True)
    key.add_argument("--name", default="default")
    worker = sub.add_parser("create-worker", help="a worker and its heartbeat token")
    worker.add_argument("--org", required=True)
    worker.add_argument("--name", required=True)
    worker.add_argument("--user", help="the user recorded as its creator")


async def _perform(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    redis = connect_redis(settings, max_connections=2)
    try:
        if args.action == "create-org":
            return {"orgId": await management.create_organization(pool, args.name)}
        if args.action == "create-user":
            user_id = await management.create_user(pool, args.email, args.name)
            await management.add_membership(pool, args.org, user_id, args.role)
            return {"userId": user_id, "orgId": args.org, "role": args.role}
        if args.action == "create-session":
            ttl = timedelta(seconds=args.ttl or settings.session_ttl)
            token = await management.create_session(pool, args.user, args.org, ttl)
            return {"sessionToken": token, "expiresIn": ttl.total_seconds()}
        if args.action == "create-api-key":
            key_id, secret, _ = await management.create_api_key(pool, redis, args.org, args.name)
            return {"apiKeyId": key_id, "apiKey": secret}
        worker_id, token, _ = await management.create_worker(
            pool, redis, settings, args.org, args.name, args.user
        )
        return {"workerId": worker_id, "heartbeatToken": token}
    finally:
        await redis.aclose()
        await pool.close()


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        result = asyncio.run(_perform(settings, args))
    except management.NotAMember as exc:
        print(f"hb admin: {exc}", file=sys.stderr)
        return 1
    except asyncpg.ForeignKeyViolationError as exc:
        print(f"hb admin: unknown organization or user ({exc.detail})", file=sys.stderr)
        return 1
    except asyncpg.UniqueViolationError as exc:
        print(f"hb admin: already exists ({exc.detail})", file=sys.stderr)
        return 1
    except POSTGRES_FAILURES as exc:
        print(f"hb admin: {describe(exc, settings.database_url)}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0
