"""The ingest app with the fleet index taken out of its record script (no `seen:` index, no
revived set; `bench/unindexed_record.py`), registered in place of the product's script in this
process only. `bench fleet` compares the real app against it."""

from __future__ import annotations

import ingest.group_commit as group_commit
from bench.unindexed_record import without_fleet_index
from shared.contract.record import RECORD_HEARTBEATS
from shared.redis.lua import LuaScript

group_commit.RECORD_HEARTBEATS = LuaScript(without_fleet_index(RECORD_HEARTBEATS.source)[0])

from ingest.app import app  # noqa: E402

__all__ = ["app"]
