"""Secrets: signed worker heartbeat tokens, and random org API keys and session tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import NamedTuple

WORKER_TOKEN_PREFIX = "hbw"
API_KEY_PREFIX = "hbk_"
SESSION_PREFIX = "hbs_"


class WorkerClaim(NamedTuple):
    worker_id: str
    version: int


def _sign(key: bytes, worker_id: str, version: int) -> str:
    mac = hmac.new(key, f"{worker_id}.{version}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def issue_worker_token(keys: dict[str, bytes], kid: str, worker_id: str, version: int) -> str:
    """`hbw.<kid>.<worker id>.<version>.<HMAC-SHA256 of worker id and version>`."""
    return (
        f"{WORKER_TOKEN_PREFIX}.{kid}.{worker_id}.{version}.{_sign(keys[kid], worker_id, version)}"
    )


def verify_worker_token(keys: dict[str, bytes], token: str) -> WorkerClaim | None:
    """The claim of a well-signed token, or None; revocation is the registry's check."""
    # Headers arrive as latin-1; a non-ASCII token is forged, and compare_digest refuses it.
    if not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != WORKER_TOKEN_PREFIX:
        return None
    _, kid, worker_id, version_text, signature = parts
    key = keys.get(kid)
    if key is None or not version_text.isdigit() or len(version_text) > 9:
        return None
    version = int(version_text)
    if version_text != str(version):  # one spelling per token: "03" is not version 3
        return None
    if not hmac.compare_digest(_sign(key, worker_id, version), signature):
        return None
    return WorkerClaim(worker_id, version)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_session_token() -> str:
    return SESSION_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """API keys and session tokens are stored as their SHA-256: they are random, so no salt."""
    return hashlib.sha256(secret.encode()).hexdigest()
