"""Header parsing of the hot routes under generated headers: a value or None, never an error."""

from __future__ import annotations

import hypothesis
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.requests import Request

from api.auth import credential_of
from ingest.asgi_io import bearer, header, is_json

SETTINGS = hypothesis.settings(max_examples=300, deadline=None, derandomize=True, database=None)

header_values = st.binary(max_size=80) | st.sampled_from(
    [b"Bearer", b"bearer ", b"Bearer  x", b"BEARER hbw.a.b.1.c", b"application/json; x",
     b"text/plain", b"application/problem+json", b"\xff\xfe", b""]
)  # fmt: skip
headers = st.lists(
    st.tuples(
        st.sampled_from([b"authorization", b"content-type", b"x-api-key", b"x-other"]),
        header_values,
    ),
    max_size=4,
)


@SETTINGS
@hypothesis.given(headers)
def test_ingest_reads_any_headers_without_failing(raw: list[tuple[bytes, bytes]]) -> None:
    scope = {"type": "http", "headers": raw}
    token = bearer(scope)
    assert token is None or isinstance(token, str)
    assert isinstance(is_json(scope), bool)
    found = header(scope, b"authorization")
    assert found is None or isinstance(found, bytes)


@SETTINGS
@hypothesis.given(headers)
def test_the_api_reads_any_credential_headers_without_failing(
    raw: list[tuple[bytes, bytes]],
) -> None:
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": raw})
    credential = credential_of(request)
    if credential is not None:  # exactly one secret's hash, never both
        assert (credential.session_hash is None) != (credential.api_key_hash is None)
    assert isinstance(Headers(raw=raw), Headers)
