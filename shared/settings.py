"""Settings from `HB_*` environment variables, validated once at start."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

PREFIX = "HB_"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value):
        raise SettingsError(f"{PREFIX}{name} must be a finite number of seconds, got {raw!r}")
    if value <= 0:
        raise SettingsError(f"{PREFIX}{name} must be greater than 0, got {raw!r}")
    return value


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{PREFIX}{name} must be greater than 0, got {raw!r}")
    return value


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{PREFIX}{name} must be true or false, got {raw!r}")


def parse_token_keys(raw: str) -> dict[str, bytes]:
    """`kid:secret[,kid:secret...]`; the first key signs new tokens, all of them verify."""
    keys: dict[str, bytes] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        kid, sep, secret = part.partition(":")
        if not sep or not kid or not secret:
            raise SettingsError(
                f"{PREFIX}TOKEN_KEYS entries must look like kid:secret, got {part!r}"
            )
        if not kid.isalnum():
            raise SettingsError(f"{PREFIX}TOKEN_KEYS key id {kid!r} must be letters and digits")
        if len(secret) < 16:
            raise SettingsError(f"{PREFIX}TOKEN_KEYS secret for {kid!r} must be 16+ characters")
        keys[kid] = secret.encode()
    if not keys:
        raise SettingsError(f"{PREFIX}TOKEN_KEYS must name at least one kid:secret")
    return keys


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_redis_url: str = ""  # the flusher's arq queue; empty: redis_url
    database_url: str = "postgresql://postgres@127.0.0.1:5432/heartbeat"
    token_keys: dict[str, bytes] = field(default_factory=dict)
    redis_cluster: bool = False
    shards: int = 64
    heartbeat_interval: float = 30.0
    stale_after: float = 75.0
    offline_after: float = 150.0
    persist_interval: float = 60.0
    flush_interval: float = 5.0
    flush_chunk: int = 5000
    max_beats_per_call: int = 256
    flush_lease: float = 60.0
    reconcile_interval: float = 300.0
    apikey_cache_ttl: float = 10.0
    max_body_bytes: int = 65536
    max_header_bytes: int = 16384
    request_timeout: float = 10.0
    max_connections: int = 1024
    redis_timeout: float = 2.0
    retry_after: int = 1
    log_level: str = "info"

    @property
    def signing_kid(self) -> str:
        return next(iter(self.token_keys))


_SECONDS = {
    "heartbeat_interval", "stale_after", "offline_after", "persist_interval", "flush_interval",
    "flush_lease", "reconcile_interval", "apikey_cache_ttl", "redis_timeout", "request_timeout",
}  # fmt: skip
_INTS = {
    "shards", "flush_chunk", "max_beats_per_call", "max_body_bytes", "max_header_bytes",
    "max_connections", "retry_after",
}  # fmt: skip
_LOG_LEVELS = ("debug", "info", "warning", "error")
# Liveness grace in heartbeat intervals when not set: a GC pause or a deploy must not flap a worker.
STALE_AFTER_BEATS = 2.5
OFFLINE_AFTER_BEATS = 5.0


def load_settings(
    env: Mapping[str, str] | None = None, *, require_token_keys: bool = True
) -> Settings:
    """`require_token_keys=False` for services that never sign or verify worker tokens."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = env.get(PREFIX + f.name.upper())
        if raw is None:
            continue
        name = f.name.upper()
        if f.name in _SECONDS:
            values[f.name] = _seconds(name, raw)
        elif f.name in _INTS:
            values[f.name] = _positive_int(name, raw)
        elif f.name == "redis_cluster":
            values[f.name] = _bool(name, raw)
        elif f.name == "token_keys":
            values[f.name] = parse_token_keys(raw)
        elif f.name == "log_level":
            if raw.strip().lower() not in _LOG_LEVELS:
                raise SettingsError(f"{PREFIX}LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
            values[f.name] = raw.strip().lower()
        else:
            if not raw.strip():
                raise SettingsError(f"{PREFIX}{name} must not be empty")
            values[f.name] = raw.strip()
    if "token_keys" not in values and require_token_keys:
        raise SettingsError(
            f"{PREFIX}TOKEN_KEYS is required: comma-separated kid:secret pairs, e.g. "
            f"{PREFIX}TOKEN_KEYS=k1:$(openssl rand -hex 32)"
        )
    interval = float(values.get("heartbeat_interval", Settings.heartbeat_interval))  # type: ignore[arg-type]
    values.setdefault("stale_after", interval * STALE_AFTER_BEATS)
    values.setdefault("offline_after", interval * OFFLINE_AFTER_BEATS)
    settings = Settings(**values)  # type: ignore[arg-type]
    if not settings.stale_after < settings.offline_after:
        raise SettingsError(f"{PREFIX}STALE_AFTER must be less than {PREFIX}OFFLINE_AFTER")
    return settings
