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
