"""Settings from `HB_*` environment variables, validated once at start."""

from __future__ import annotations

import importlib.util
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from urllib.parse import SplitResult, parse_qs, urlsplit

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


def _ratio(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:  # NaN fails this too
        raise SettingsError(f"{PREFIX}{name} must be a number from 0 to 1, got {raw!r}")
    return value


# What HB_TRACING can name, and the modules (of the optional `tracing` extra) each one needs:
# checked at start, so a missing package fails there, by name, not at the first span.
TRACING_MODES: dict[str, tuple[str, ...]] = {
    "off": (),
    "console": ("opentelemetry.sdk.trace",),
    "otlp": ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter"),
}


def _tracing(raw: str) -> str:
    mode = raw.strip().lower()
    if mode not in TRACING_MODES:
        raise SettingsError(
            f"{PREFIX}TRACING must be one of {', '.join(TRACING_MODES)}, got {raw!r}"
        )
    for module in TRACING_MODES[mode]:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            raise SettingsError(
                f"{PREFIX}TRACING={mode} needs the OpenTelemetry packages: "
                "pip install 'heartbeat-control-plane[tracing]'"
            )
    return mode


# URLs are checked by shape only (reaching the server is the service's business), and never
# echoed in a message: they may carry a password.
def _split(raw: str, schemes: tuple[str, ...]) -> SplitResult | None:
    try:
        parts = urlsplit(raw)
    except ValueError:  # say, an unclosed "[" of an IPv6 address
        return None
    if parts.scheme not in schemes or not raw.lower().startswith(parts.scheme + "://"):
        return None
    return parts


def check_database_url(label: str, raw: str) -> str:
    """`raw` if it is a usable Postgres URL, else SettingsError naming `label`."""
    parts = _split(raw, ("postgresql", "postgres"))
    if parts is None:
        raise SettingsError(
            f"{label} must be a postgresql:// URL, e.g. postgresql://user@host:5432/db"
        )
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts and parse_qs(parts.query).get("host"):
        return raw
    for host in hosts.split(","):  # libpq's multi-host form: host1:5432,host2:5433
        m = _HOST_PORT.fullmatch(host)
        if m is None or not m[1]:
            raise SettingsError(
                f"{label} must name a host (postgresql://user@host:5432/db) "
                "or a socket directory (postgresql:///db?host=/var/run/postgresql)"
            )
        if m[2] is not None and not (m[2].isascii() and m[2].isdigit() and 0 < int(m[2]) < 65536):
            raise SettingsError(f"{label} has an invalid port for host {m[1]!r}")
    return raw


# One host of a Postgres URL: a name, an address or a percent-encoded socket directory, or a
# bracketed IPv6 address; then maybe a port.
_HOST_PORT = re.compile(r"(\[[^\]]+\]|[^\[\]:]*)(?::(.*))?")


def check_redis_url(label: str, raw: str) -> str:
    """`raw` if it is a usable Redis URL, else SettingsError naming `label`."""
    parts = _split(raw, ("redis", "rediss", "unix"))
    if parts is None:
        raise SettingsError(
            f"{label} must be a redis://, rediss:// or unix:// URL, "
            "e.g. redis://host:6379/0 or unix:///path/redis.sock"
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise SettingsError(f"{label} must name a socket path (unix:///path/redis.sock)")
        return raw
    if not parts.hostname:
        raise SettingsError(f"{label} must name a host (redis://host:6379/0)")
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise SettingsError(f"{label} has an invalid port") from None
    return raw


_URLS = {
    "database_url": check_database_url,
    "redis_url": check_redis_url,
    "queue_redis_url": check_redis_url,
}


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
    session_ttl: float = 30 * 86_400.0
    postgres_timeout: float = 5.0
    max_workers_per_org: int = 1_000_000
    max_api_keys_per_org: int = 100
    max_body_bytes: int = 65536
    max_header_bytes: int = 16384
    request_timeout: float = 10.0
    max_connections: int = 1024
    max_metadata_bytes: int = 8192
    max_log_bytes: int = 65536  # a worker's recent log lines together (Kubiya's full beats)
    redis_timeout: float = 2.0
    retry_after: int = 1
    log_level: str = "info"
    tracing: str = "off"  # off, console or otlp (OTEL_EXPORTER_OTLP_* say where)
    trace_sample_ratio: float = 0.01  # share of ingest's beats traced
    event_retention: float = 7 * 86_400.0  # fleet events older than this are deleted
    event_poll_interval: float = 1.0  # how often an event stream looks for new events
    sse_keepalive: float = 15.0  # a comment on an idle event stream this often
    event_stream_max: float = 3600.0  # an event stream ends after this long (clients resume)
    webhook_allow_private: bool = False  # deliver to private and loopback addresses too
    webhook_timeout: float = 5.0  # one delivery attempt, connect to response
    webhook_backoff: float = 2.0  # the first retry's delay; doubles each attempt, jittered
    webhook_retry_for: float = 86_400.0  # retries stop this long after the event: failed

    @property
    def signing_kid(self) -> str:
        return next(iter(self.token_keys))


_SECONDS = {
    "heartbeat_interval", "stale_after", "offline_after", "persist_interval", "flush_interval",
    "flush_lease", "reconcile_interval", "apikey_cache_ttl", "redis_timeout", "request_timeout",
    "session_ttl", "postgres_timeout", "event_retention", "event_poll_interval", "sse_keepalive",
    "event_stream_max", "webhook_timeout", "webhook_backoff", "webhook_retry_for",
}  # fmt: skip
_INTS = {
    "shards", "flush_chunk", "max_beats_per_call", "max_body_bytes", "max_metadata_bytes",
    "max_log_bytes", "max_header_bytes", "max_connections", "retry_after", "max_workers_per_org",
    "max_api_keys_per_org",
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
        elif f.name in ("redis_cluster", "webhook_allow_private"):
            values[f.name] = _bool(name, raw)
        elif f.name == "token_keys":
            values[f.name] = parse_token_keys(raw)
        elif f.name == "tracing":
            values[f.name] = _tracing(raw)
        elif f.name == "trace_sample_ratio":
            values[f.name] = _ratio(name, raw)
        elif f.name == "log_level":
            if raw.strip().lower() not in _LOG_LEVELS:
                raise SettingsError(f"{PREFIX}LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
            values[f.name] = raw.strip().lower()
        else:
            if not raw.strip():
                raise SettingsError(f"{PREFIX}{name} must not be empty")
            check = _URLS.get(f.name)
            values[f.name] = raw.strip() if check is None else check(PREFIX + name, raw.strip())
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
