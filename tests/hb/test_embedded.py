"""The embedded servers `hb dev` runs on: what they keep across a restart."""

from __future__ import annotations

from pathlib import Path

import redis as sync_redis

from hb.embedded import EmbeddedRedis


def test_persistent_redis_has_a_save_schedule_and_an_append_only_file(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persist=True)
    server.start()
    try:
        client = sync_redis.Redis.from_url(server.url, decode_responses=True)
        assert client.config_get("save") == {"save": "60 1"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    finally:
        server.stop()


def test_persistent_redis_keeps_its_data_across_a_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persist=True)
    server.start()
    try:
        client = sync_redis.Redis.from_url(server.url)
        client.set("kept", "yes")
        client.close()
        server.stop()
        server.start()
        client = sync_redis.Redis.from_url(server.url)
        assert client.get("kept") == b"yes"
        client.close()
    finally:
        server.stop()


def test_throwaway_redis_saves_nothing(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    try:
        client = sync_redis.Redis.from_url(server.url, decode_responses=True)
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        client.close()
    finally:
        server.stop()


def test_only_the_search_bit_is_added_to_the_folders_above_a_path(tmp_path) -> None:
    import stat

    from hb.embedded import allow_traversal

    above = tmp_path / "private"
    target = above / "inner" / "data"
    target.mkdir(parents=True)
    above.chmod(0o700)
    (above / "inner").chmod(0o700)

    allow_traversal(target)

    for folder in (above, above / "inner"):
        mode = stat.S_IMODE(folder.stat().st_mode)
        assert mode == 0o711  # others may pass through, not list or read
