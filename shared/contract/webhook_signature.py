"""The signature of a webhook delivery: `X-Heartbeat-Signature: t=<unix s>,v1=<hex>`, the hex
being HMAC-SHA256 with the webhook's secret over "<t>.<body>". Receivers recompute it and
reject old `t` values (replays)."""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Heartbeat-Signature"


def sign(secret: str, body: bytes, unix_s: int) -> str:
    mac = hmac.new(secret.encode(), f"{unix_s}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={unix_s},v1={mac}"


def verify(secret: str, body: bytes, header: str) -> bool:
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not fields.get("t", "").isdigit() or "v1" not in fields:
        return False
    expected = sign(secret, body, int(fields["t"])).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields["v1"])
