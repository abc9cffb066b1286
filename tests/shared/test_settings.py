from __future__ import annotations

import pytest

from shared.settings import Settings, SettingsError, load_settings, parse_token_keys

KEYS = "k1:0123456789abcdef0123,k0:fedcba9876543210fedc"


def test_defaults_need_only_the_token_keys():
    settings = load_settings({"HB_TOKEN_KEYS": KEYS})
    assert settings == Settings(token_keys=parse_token_keys(KEYS))
    assert settings.signing_kid == "k1"
    assert list(settings.token_keys) == ["k1", "k0"]


def test_every_variable_is_read_with_its_type():
    settings = load_settings(
        {
            "HB_TOKEN_KEYS": KEYS,
            "HB_REDIS_URL": " redis://cache:6380/1 ",
            "HB_REDIS_CLUSTER": "yes",
            "HB_SHARDS": "16",
            "HB_HEARTBEAT_INTERVAL": "10",
            "HB_STALE_AFTER": "25.5",
            "HB_OFFLINE_AFTER": "50",
            "HB_MAX_BODY_BYTES": "1024",
            "HB_RETRY_AFTER": "5",
            "UNRELATED": "ignored",
        }
    )
    assert settings.redis_url == "redis://cache:6380/1"
    assert settings.redis_cluster is True
    assert settings.shards == 16
    assert settings.heartbeat_interval == 10.0
    assert settings.stale_after == 25.5
    assert settings.max_body_bytes == 1024
    assert settings.retry_after == 5


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "HB_TOKEN_KEYS is required"),
        ({"HB_TOKEN_KEYS": ""}, "HB_TOKEN_KEYS must name at least one"),
        ({"HB_TOKEN_KEYS": "nocolon"}, "HB_TOKEN_KEYS entries must look like kid:secret"),
        ({"HB_TOKEN_KEYS": "k1:short"}, "HB_TOKEN_KEYS secret for 'k1' must be 16+"),
        ({"HB_TOKEN_KEYS": "k-1:0123456789abcdef0"}, "HB_TOKEN_KEYS key id 'k-1'"),
        ({"HB_SHARDS": "many"}, "HB_SHARDS must be a whole number, got 'many'"),
        ({"HB_SHARDS": "0"}, "HB_SHARDS must be greater than 0"),
        ({"HB_SHARDS": "2.5"}, "HB_SHARDS must be a whole number"),
        ({"HB_MAX_BODY_BYTES": "-1"}, "HB_MAX_BODY_BYTES must be greater than 0"),
        ({"HB_MAX_METADATA_BYTES": "0"}, "HB_MAX_METADATA_BYTES must be greater than 0"),
        ({"HB_MAX_METADATA_BYTES": "8k"}, "HB_MAX_METADATA_BYTES must be a whole number"),
        ({"HB_DATABASE_URL": "notaurl"}, "HB_DATABASE_URL must be a postgresql:// URL"),
        ({"HB_DATABASE_URL": "mysql://db/x"}, "HB_DATABASE_URL must be a postgresql:// URL"),
        ({"HB_DATABASE_URL": "postgresql:///heartbeat"}, "HB_DATABASE_URL must name a host"),
        ({"HB_DATABASE_URL": "postgres://db:port/x"}, "HB_DATABASE_URL has an invalid port"),
        ({"HB_REDIS_URL": "localhost:6379"}, "HB_REDIS_URL must be a redis://, rediss://"),
        ({"HB_REDIS_URL": "http://cache:6379"}, "HB_REDIS_URL must be a redis://, rediss://"),
        ({"HB_REDIS_URL": "redis://"}, "HB_REDIS_URL must name a host"),
        ({"HB_REDIS_URL": "unix://"}, "HB_REDIS_URL must name a socket path"),
        ({"HB_QUEUE_REDIS_URL": "queue"}, "HB_QUEUE_REDIS_URL must be a redis://, rediss://"),
        ({"HB_REDIS_TIMEOUT": "soon"}, "HB_REDIS_TIMEOUT must be a number of seconds"),
        ({"HB_PERSIST_INTERVAL": "0"}, "HB_PERSIST_INTERVAL must be greater than 0"),
        ({"HB_REDIS_CLUSTER": "maybe"}, "HB_REDIS_CLUSTER must be true or false"),
        ({"HB_REDIS_URL": "  "}, "HB_REDIS_URL must not be empty"),
        ({"HB_STALE_AFTER": "200"}, "HB_STALE_AFTER must be less than HB_OFFLINE_AFTER"),
    ],
)
def test_bad_settings_are_refused_with_a_message_naming_the_variable(env, message):
    env = {"HB_TOKEN_KEYS": KEYS, **env} if "HB_TOKEN_KEYS" not in env and env else env
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load_settings(env)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
def test_non_finite_durations_are_refused(raw):
    with pytest.raises(SettingsError, match="HB_HEARTBEAT_INTERVAL"):
        load_settings({"HB_TOKEN_KEYS": KEYS, "HB_HEARTBEAT_INTERVAL": raw})


def test_liveness_thresholds_follow_the_heartbeat_interval_unless_set():
    keys = {"HB_TOKEN_KEYS": "k1:0123456789abcdef0123"}
    derived = load_settings({**keys, "HB_HEARTBEAT_INTERVAL": "10"})
    assert (derived.stale_after, derived.offline_after) == (25.0, 50.0)
    explicit = load_settings({**keys, "HB_HEARTBEAT_INTERVAL": "10", "HB_STALE_AFTER": "12"})
    assert (explicit.stale_after, explicit.offline_after) == (12.0, 50.0)


def test_log_level_must_be_a_known_level():
    with pytest.raises(SettingsError, match="HB_LOG_LEVEL"):
        load_settings({"HB_TOKEN_KEYS": "k1:0123456789abcdef0123", "HB_LOG_LEVEL": "loud"})


def test_the_metadata_limit_defaults_to_8_kib_and_can_be_set():
    assert load_settings({"HB_TOKEN_KEYS": KEYS}).max_metadata_bytes == 8192
    env = {"HB_TOKEN_KEYS": KEYS, "HB_MAX_METADATA_BYTES": "1024"}
    assert load_settings(env).max_metadata_bytes == 1024


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/heartbeat",
        "postgres://user:p%40ss@db.internal/heartbeat?sslmode=require",
        "postgresql://u@[::1]:5432/x",
        "postgresql://u@h1:5432,h2:5433/x",
        "postgresql:///heartbeat?host=/var/run/postgresql",
        "postgresql://%2Fvar%2Frun%2Fpostgresql/heartbeat",
    ],
)
def test_database_urls_with_a_host_or_a_socket_are_accepted(url):
    assert load_settings({"HB_TOKEN_KEYS": KEYS, "HB_DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://:secret@cache:6380/1",
        "rediss://cache.example:6380?ssl_cert_reqs=none",
        "redis://[::1]:6379",
        "unix:///var/run/redis.sock?db=2",
    ],
)
def test_redis_urls_of_the_three_schemes_are_accepted(url):
    env = {"HB_TOKEN_KEYS": KEYS, "HB_REDIS_URL": url, "HB_QUEUE_REDIS_URL": url}
    settings = load_settings(env)
    assert (settings.redis_url, settings.queue_redis_url) == (url, url)
