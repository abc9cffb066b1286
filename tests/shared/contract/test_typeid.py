from __future__ import annotations

import pytest

from shared.contract import typeid


def test_new_id_round_trips_through_its_suffix():
    value = typeid.new_id(typeid.WORKER)
    assert typeid.is_valid(value, typeid.WORKER)
    prefix, suffix = value.split("_")
    assert prefix == "wrk" and len(value) == 30
    assert typeid.encode_suffix(typeid.decode_suffix(suffix)) == suffix


def test_new_id_is_a_uuid7_carrying_its_millisecond_timestamp():
    value = typeid.decode_suffix(typeid.new_id(typeid.ORG, now_ms=1_700_000_000_123)[4:])
    assert value >> 80 == 1_700_000_000_123
    assert value >> 76 & 0xF == 7  # version
    assert value >> 62 & 0b11 == 0b10  # variant


def test_ids_sort_by_creation_time():
    earlier = typeid.new_id(typeid.WORKER, now_ms=1_000)
    later = typeid.new_id(typeid.WORKER, now_ms=2_000)
    assert earlier < later


def test_spec_example_decodes_to_its_uuid():
    # The TypeID specification's example, UUID 01890a5d-ac96-774b-bcce-b302099a8057.
    assert typeid.decode_suffix("01h455vb4pex5vsknk084sn02q") == 0x01890A5DAC96774BBCCEB302099A8057


def test_largest_suffix_is_all_ones_and_first_character_above_7_overflows():
    assert typeid.decode_suffix("7zzzzzzzzzzzzzzzzzzzzzzzzz") == (1 << 128) - 1
    with pytest.raises(ValueError):
        typeid.decode_suffix("8zzzzzzzzzzzzzzzzzzzzzzzzz")


@pytest.mark.parametrize(
    "value",
    [
        "wrk_" + "0" * 25,
        "wrk_" + "0" * 27,
        "usr_01h455vb4pex5vsknk084sn02q",
        "wrk-01h455vb4pex5vsknk084sn02q",
        "wrk_01h455vb4pex5vsknk084sn02l",  # l, i, o and u are not in Crockford's alphabet
        "wrk_01h455vb4pex5vsknk084sn02o",
        "wrk_01H455VB4PEX5VSKNK084SN02Q",
        "wrk_81h455vb4pex5vsknk084sn02q",
        "wrk_01h455vb4pex5vsknk084sn0é",
        "",
    ],
)
def test_malformed_ids_are_invalid(value):
    assert not typeid.is_valid(value, typeid.WORKER)
