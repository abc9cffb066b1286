"""Parsers of what clients send, under generated input: an answer or the documented refusal,
never anything else (an exception escaping one becomes a 500)."""

from __future__ import annotations

import contextlib

import hypothesis
from hypothesis import strategies as st

from shared.contract import typeid
from shared.contract.tokens import issue_worker_token, verify_worker_token

SETTINGS = hypothesis.settings(max_examples=300, deadline=None, derandomize=True, database=None)
KEYS = {"k1": b"property-signing-key-0123456789"}

# Text near the real shapes finds more than plain random text does.
near_ids = st.builds(
    lambda prefix, body: f"{prefix}_{body}",
    st.sampled_from(["wrk", "org", "usr", "key", "x", ""]),
    st.text(alphabet=typeid.ALPHABET + "0789ilouAZ\u00b2\u0661_-", max_size=30),
)
near_tokens = st.builds(
    lambda parts: ".".join(parts),
    st.lists(st.text(alphabet="hbwk0123456789._-abcXYZ\u00b2\u0661", max_size=40), max_size=7),
)


@SETTINGS
@hypothesis.given(st.text() | near_ids, st.sampled_from(["wrk", "org", "usr", "key"]))
def test_a_typeid_check_answers_yes_or_no_for_any_text(value: str, prefix: str) -> None:
    valid = typeid.is_valid(value, prefix)
    assert isinstance(valid, bool)
    if valid:  # what it accepts decodes to the 128 bits of a UUID
        assert typeid.decode_suffix(value[len(prefix) + 1 :]) < 2**128


@SETTINGS
@hypothesis.given(st.text())
def test_decoding_a_suffix_returns_a_number_or_refuses_with_value_error(suffix: str) -> None:
    with contextlib.suppress(ValueError):
        assert typeid.decode_suffix(suffix) >= 0


@SETTINGS
@hypothesis.given(st.text() | near_tokens)
def test_a_worker_token_check_returns_a_claim_or_none_for_any_text(token: str) -> None:
    claim = verify_worker_token(KEYS, token)
    if claim is not None:  # only what the key signed gets through
        assert issue_worker_token(KEYS, "k1", claim.worker_id, claim.version) == token


@SETTINGS
@hypothesis.given(st.text(max_size=30), st.integers(min_value=1, max_value=999_999_999))
def test_a_token_with_any_one_character_changed_is_refused(worker_id: str, version: int) -> None:
    if "." in worker_id:
        return  # not a worker id the API would sign for
    token = issue_worker_token(KEYS, "k1", worker_id, version)
    for i in range(len(token)):
        changed = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        assert verify_worker_token(KEYS, changed) is None
