"""The hand-packed Redis commands of the hot path are exactly what the protocol says."""

import pytest

from shared.redis.resp import bulk_strings, evalsha


def resp(values: list[str]) -> bytes:
    return b"".join(b"$%d\r\n%b\r\n" % (len(v.encode()), v.encode()) for v in values)


@pytest.mark.parametrize(
    "values",
    [
        [],
        [""],
        ["wrk_01m813kksqfg1bk91px9rxvsyr", "", "1763794800123", "d"],
        ["x" * 255, "y" * 256, "z" * 70_000],
        ["ünïcödé", "ok", "日本"],  # byte lengths differ from character counts
    ],
)
def test_bulk_strings_are_length_prefixed_in_bytes(values):
    assert bulk_strings(values) == resp(values)


def test_evalsha_is_one_array_of_the_command_sha_key_count_keys_and_args():
    sha = "a" * 40
    packed = evalsha(sha, ["k1", "k2"], ["x", "ÿ"])
    assert packed == b"*7\r\n" + resp(["EVALSHA", sha, "2", "k1", "k2", "x", "ÿ"])
