"""A fleet of registered workers with valid tokens, written straight into the hot store."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from shared import hotstore, typeid
from shared.settings import parse_token_keys
from shared.tokens import issue_worker_token


@dataclass(frozen=True)
class Fleet:
    org_id: str
    worker_ids: list[str]
    tokens: list[str]


def new_fleet(size: int, token_keys: str, org_id: str | None = None) -> Fleet:
    keys = parse_token_keys(token_keys)
    kid = next(iter(keys))
    ids = [typeid.new_id(typeid.WORKER) for _ in range(size)]
    tokens = [issue_worker_token(keys, kid, worker_id, 1) for worker_id in ids]
    return Fleet(org_id or typeid.new_id(typeid.ORG), ids, tokens)


def register_fleet(redis_url: str, fleet: Fleet, shards: int) -> None:
    """What `hotstore.register_worker` writes, pipelined: one round trip per 1,000 workers."""
    client = Redis.from_url(redis_url)
    try:
        for start in range(0, len(fleet.worker_ids), 1000):
            pipe = client.pipeline(transaction=False)
            for worker_id in fleet.worker_ids[start : start + 1000]:
                pipe.hset(
                    hotstore.worker_key(worker_id, shards),
                    mapping={hotstore.F_ORG: fleet.org_id, hotstore.F_TOKEN_VERSION: "1"},
                )
            pipe.execute()
    finally:
        client.close()
