from __future__ import annotations

import msgspec
import pytest

from shared.contract.wire import (
    MAX_SAFE_INTEGER,
    DenHeartbeat,
    den_decoder,
    error_location,
    is_missing_field,
    kubiya_decoder,
)


def _error(decoder: msgspec.json.Decoder, body: bytes) -> msgspec.ValidationError:
    with pytest.raises(msgspec.ValidationError) as info:
        decoder.decode(body)
    return info.value


def test_den_body_decodes_with_unset_optionals():
    beat = den_decoder.decode(b'{"isActiveRecently": false}')
    assert beat == DenHeartbeat(isActiveRecently=False)
    assert beat.sentAt is msgspec.UNSET and beat.openSessionCount is msgspec.UNSET


def test_den_last_activity_may_be_null():
    beat = den_decoder.decode(b'{"isActiveRecently": true, "lastActivityAt": null}')
    assert beat.lastActivityAt is None


def test_error_location_splits_message_and_path():
    err = _error(den_decoder, b'{"isActiveRecently": true, "openSessionCount": -1}')
    assert error_location(err) == ("Expected `int` >= 0", ["openSessionCount"])


def test_error_location_names_a_missing_field():
    err = _error(den_decoder, b"{}")
    message, path = error_location(err)
    assert path == ["isActiveRecently"]
    assert "isActiveRecently" in message
    assert is_missing_field(err)


def test_error_location_reports_nested_paths():
    err = _error(
        kubiya_decoder, b'{"worker_id": "w", "environment_name": "e", "worker_metadata": 1}'
    )
    assert error_location(err)[1] == ["worker_metadata"]
    assert not is_missing_field(err)


def test_session_count_error_asks_for_an_integer():
    err = _error(den_decoder, b'{"isActiveRecently": true, "openSessionCount": "1"}')
    assert error_location(err) == ("Expected `int`, got `str`", ["openSessionCount"])


def test_session_count_upper_bound_is_the_largest_safe_integer():
    body = b'{"isActiveRecently": true, "openSessionCount": %d}'
    assert den_decoder.decode(body % MAX_SAFE_INTEGER).openSessionCount == MAX_SAFE_INTEGER
    _error(den_decoder, body % (MAX_SAFE_INTEGER + 1))


def test_kubiya_defaults_follow_the_contract():
    beat = kubiya_decoder.decode(b'{"worker_id": "w", "environment_name": "e"}')
    assert (beat.status, beat.tasks_processed, beat.current_task_id, beat.worker_metadata) == (
        "active",
        0,
        None,
        {},
    )
