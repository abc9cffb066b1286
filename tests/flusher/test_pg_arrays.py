import asyncpg
import pytest

from flusher.pg_arrays import array_literal

AWKWARD = [
    b'a,b', b'"quoted"', b"back\\slash", b"{braces}", b" padded ", b"NULL", b"null",
    "caf\u00e9 \u2603".encode(), b"tab\there", b"line\nbreak",
]  # fmt: skip


async def test_free_text_reaches_postgres_exactly_and_empty_is_null(pool):
    values = [*AWKWARD, b""]
    got = await pool.fetchval("SELECT $1::text::text[]", array_literal(values, quote=True))
    assert got == [v.decode() for v in AWKWARD] + [None]


async def test_integers_ids_and_flags_go_unquoted(pool):
    assert array_literal([b"17", b"", b"-3"]) == "{17,NULL,-3}"
    assert await pool.fetchval("SELECT $1::text::int8[]", array_literal([b"17", b"", b"-3"])) == [
        17, None, -3,
    ]  # fmt: skip
    assert await pool.fetchval("SELECT $1::text::bool[]", array_literal([b"1", b"0", b""])) == [
        True, False, None,
    ]  # fmt: skip
    ids = [b"wrk_01jd8x7c2aeqv9yk0m3b5n6p4r", b"wrk_01jd8x7c2aeqv9yk0m3b5n6p4s"]
    assert await pool.fetchval("SELECT $1::text::text[]", array_literal(ids)) == [
        i.decode() for i in ids
    ]


@pytest.mark.parametrize("damaged", [b"12,34", b"12 34", b"{1}", b'1"', b"1e3"])
async def test_a_value_that_is_not_an_integer_fails_the_statement_instead_of_shifting_others(
    pool, damaged
):
    literal = array_literal([b"1", damaged, b"3"])
    with pytest.raises(asyncpg.DataError):
        await pool.fetchval("SELECT $1::text::int8[]", literal)


def test_bytes_that_are_not_utf8_raise_a_value_error():
    with pytest.raises(ValueError):
        array_literal([b"ok", b"\xff\xfe"], quote=True)
    with pytest.raises(ValueError):
        array_literal([b"1", b"\xff"])
