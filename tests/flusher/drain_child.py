"""A flusher process for the kill test: `python -m tests.flusher.drain_child REDIS DB MARKER`.

It drains once, but stops between claim and ack: it writes MARKER and waits to be killed.
"""

import asyncio
import sys
from pathlib import Path

from flusher.drain import drain_all
from shared.postgres.pool import create_pool
from shared.redis.connect import connect_redis
from tests.conftest import make_settings

LEASE = 0.5  # seconds; short, so the test's next flusher finds the lease expired soon


async def main(redis_url: str, database_url: str, marker: Path) -> None:
    settings = make_settings(redis_url, database_url, flush_lease=LEASE)
    redis = connect_redis(settings)
    pool = await create_pool(database_url)

    async def wait_to_be_killed(claims: object) -> None:
        await asyncio.to_thread(marker.write_text, "claimed")
        await asyncio.Event().wait()

    await drain_all(redis, pool, settings, after_claim=wait_to_be_killed)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
