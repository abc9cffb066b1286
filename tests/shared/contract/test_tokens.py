from __future__ import annotations

import hashlib

import pytest

from shared.contract.tokens import (
    API_KEY_PREFIX,
    SESSION_PREFIX,
    WorkerClaim,
    hash_secret,
    issue_worker_token,
    new_api_key,
    new_session_token,
    verify_worker_token,
)

KEYS = {"k2": b"newest-signing-key-0123456789", "k1": b"older-signing-key-0123456789"}
WORKER = "wrk_01h455vb4pex5vsknk084sn02q"


def test_issued_token_verifies_to_its_worker_and_version():
    token = issue_worker_token(KEYS, "k2", WORKER, 3)
    assert token.startswith(f"hbw.k2.{WORKER}.3.")
    assert verify_worker_token(KEYS, token) == WorkerClaim(WORKER, 3)


def test_token_of_an_older_key_still_in_the_keyring_verifies():
    token = issue_worker_token(KEYS, "k1", WORKER, 1)
    assert verify_worker_token(KEYS, token) == WorkerClaim(WORKER, 1)


def test_token_of_a_key_removed_from_the_keyring_is_refused():
    token = issue_worker_token(KEYS, "k1", WORKER, 1)
    assert verify_worker_token({"k2": KEYS["k2"]}, token) is None


def _with(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, "hbx"),
        (1, "k1"),  # claims the other key signed it
        (2, "wrk_01h455vb4pex5vsknk084sn02r"),
        (3, "4"),
        (3, "03"),
        (3, "-3"),
        (3, "³"),
        (3, "1" * 10),
        (4, "A" * 43),
        (4, ""),
        (4, "é" * 43),
    ],
)
def test_tampered_token_is_refused(index, value):
    token = _with(issue_worker_token(KEYS, "k2", WORKER, 3), index, value)
    assert verify_worker_token(KEYS, token) is None


@pytest.mark.parametrize("token", ["", "hbw", "hbw.k2", "a.b.c.d.e.f", "\xff\xfe", "hbw....."])
def test_malformed_token_is_refused(token):
    assert verify_worker_token(KEYS, token) is None


def test_api_keys_and_session_tokens_are_random_and_prefixed():
    keys = {new_api_key() for _ in range(50)}
    sessions = {new_session_token() for _ in range(50)}
    assert len(keys) == 50 and len(sessions) == 50
    assert all(k.startswith(API_KEY_PREFIX) and len(k) > 40 for k in keys)
    assert all(s.startswith(SESSION_PREFIX) and len(s) > 40 for s in sessions)


def test_hash_secret_is_sha256_hex():
    assert hash_secret("hbk_abc") == hashlib.sha256(b"hbk_abc").hexdigest()
