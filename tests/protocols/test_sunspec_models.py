"""SunSpec model tables, the register codec and the register map."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qubit_sim.protocols import sunspec
from qubit_sim.protocols.sunspec import (
    MODELS,
    NOT_IMPLEMENTED,
    ModelBlock,
    SunSpecError,
    SunSpecMap,
    choose_scale_factor,
    decode_raw,
    encode_raw,
    from_raw,
    get_model,
    quantize,
    raw_range,
    to_raw,
)
from qubit_sim.protocols.sunspec.spec import Point

# Model lengths L as published in sunspec/models json/model_<id>.json.
PUBLISHED_LENGTHS = {1: 66, 101: 50, 103: 50, 120: 26, 123: 24, 701: 153, 702: 50, 704: 65,
                     713: 7, 802: 62}  # fmt: skip

# (model, point, offset from ID, size, type, scale factor, access) from the published tables.
PUBLISHED_POINTS = [
    (1, "Mn", 2, 16, "string", None, "R"),
    (1, "SN", 50, 16, "string", None, "R"),
    (1, "DA", 66, 1, "uint16", None, "RW"),
    (101, "W", 14, 1, "int16", "W_SF", "R"),
    (103, "WH", 24, 2, "acc32", "WH_SF", "R"),
    (103, "St", 38, 1, "enum16", None, "R"),
    (103, "EvtVnd4", 50, 2, "bitfield32", None, "R"),
    (120, "WRtg", 3, 1, "uint16", "WRtg_SF", "R"),
    (120, "Pad", 27, 1, "pad", None, "R"),
    (123, "Conn", 4, 1, "enum16", None, "RW"),
    (123, "WMaxLimPct", 5, 1, "uint16", "WMaxLimPct_SF", "RW"),
    (123, "WMaxLimPct_RvrtTms", 7, 1, "uint16", None, "RW"),
    (123, "WMaxLim_Ena", 9, 1, "enum16", None, "RW"),
    (123, "VArPct_SF", 25, 1, "sunssf", None, "R"),
    (701, "Alrm", 6, 2, "bitfield32", None, "R"),
    (701, "W", 10, 1, "int16", "W_SF", "R"),
    (701, "Hz", 17, 2, "uint32", "Hz_SF", "R"),
    (701, "TotWhInj", 19, 4, "uint64", "TotWh_SF", "R"),
    (701, "WL1", 41, 1, "int16", "W_SF", "R"),
    (701, "VL3L1", 92, 1, "uint16", "V_SF", "R"),
    (701, "ThrotSrc", 111, 2, "bitfield32", None, "R"),
    (701, "W_SF", 116, 1, "sunssf", None, "R"),
    (701, "MnAlrmInfo", 123, 32, "string", None, "R"),
    (702, "WMaxRtg", 2, 1, "uint16", "W_SF", "R"),
    (702, "CtrlModes", 23, 2, "bitfield32", None, "R"),
    (702, "WMax", 26, 1, "uint16", "W_SF", "RW"),
    (702, "S_SF", 51, 1, "sunssf", None, "R"),
    (704, "WMaxLimPctEna", 14, 1, "enum16", None, "RW"),
    (704, "WSetEna", 22, 1, "enum16", None, "RW"),
    (704, "WSetMod", 23, 1, "enum16", None, "RW"),
    (704, "WSet", 24, 2, "int32", "WSet_SF", "RW"),
    (704, "WSetPct", 28, 1, "int16", "WSetPct_SF", "RW"),
    (704, "WSetRvrtTms", 31, 2, "uint32", None, "RW"),
    (704, "WSetRvrtRem", 33, 2, "uint32", None, "R"),
    (704, "VarSetPct_SF", 58, 1, "sunssf", None, "R"),
    (704, "PFWInj.PF", 59, 1, "uint16", "PF_SF", "RW"),
    (704, "PFWAbsRvrt.Ext", 66, 1, "enum16", None, "RW"),
    (713, "SoC", 4, 1, "uint16", "Pct_SF", "R"),
    (713, "Pct_SF", 8, 1, "sunssf", None, "R"),
    (802, "SoC", 11, 1, "uint16", "SoC_SF", "R"),
    (802, "NCyc", 14, 2, "uint32", None, "R"),
    (802, "State", 22, 1, "enum16", None, "R"),
    (802, "Evt1", 26, 2, "bitfield32", None, "R"),
    (802, "W", 47, 1, "int16", "W_SF", "R"),
    (802, "SetOp", 50, 1, "enum16", None, "RW"),
    (802, "W_SF", 63, 1, "sunssf", None, "R"),
]


def test_exported_members_are_pinned() -> None:
    assert sorted(sunspec.__all__) == sorted(
        [
            "BATTERY_MODELS", "DEFAULT_BASE", "END_MODEL_ID", "MODELS", "NOT_IMPLEMENTED",
            "PV_MODELS", "SUNS_MARKER", "ModelBlock", "ModelDef", "Point", "SunSpecError",
            "SunSpecMap", "choose_scale_factor", "decode_raw", "encode_raw", "from_raw",
            "get_model", "quantize", "raw_range", "to_raw",
        ]
    )  # fmt: skip


@pytest.mark.parametrize("model_id", sorted(PUBLISHED_LENGTHS))
def test_model_length_matches_published(model_id: int) -> None:
    model = get_model(model_id)
    assert model.length == PUBLISHED_LENGTHS[model_id]
    assert [p.name for p in model.points[:2]] == ["ID", "L"]
    # Points tile the model without gaps or overlaps.
    offset = 0
    for point in model.points:
        assert point.offset == offset, point.name
        offset += point.size
    assert offset == model.length + 2


@pytest.mark.parametrize(("model_id", "name", "offset", "size", "type_", "sf", "access"),
                         PUBLISHED_POINTS)  # fmt: skip
def test_points_match_published_layout(
    model_id: int, name: str, offset: int, size: int, type_: str, sf: str | None, access: str
) -> None:
    point = get_model(model_id).point(name)
    assert (point.offset, point.size, point.type, point.sf, point.access) == (
        offset,
        size,
        type_,
        sf,
        access,
    )


def test_published_symbols() -> None:
    assert get_model(704).point("WSetMod").symbols == {"W_MAX_PCT": 0, "WATTS": 1}
    assert get_model(704).point("WSetEna").symbols == {"DISABLED": 0, "ENABLED": 1}
    assert get_model(701).point("InvSt").symbols["FAULT"] == 6
    assert get_model(701).point("Alrm").symbols["MANUFACTURER_ALRM"] == 16
    assert get_model(802).point("State").symbols["FAULT"] == 99
    assert get_model(802).point("ChaSt").symbols["CHARGING"] == 4
    assert get_model(103).point("St").symbols["FAULT"] == 7
    assert get_model(123).point("Conn").symbols == {"DISCONNECT": 0, "CONNECT": 1}


def test_scale_factor_points_are_sunssf_and_every_model_is_consistent() -> None:
    for model in MODELS.values():
        for point in model.points:
            if point.sf is not None:
                assert model.point(point.sf).type == "sunssf", (model.id, point.name)
            if point.valid is not None:
                assert point.writable, (model.id, point.name)


def test_unknown_model_and_point_are_clear_errors() -> None:
    with pytest.raises(SunSpecError, match="unknown SunSpec model 999"):
        get_model(999)
    with pytest.raises(SunSpecError, match="has no point 'Nope'"):
        get_model(704).point("Nope")
    with pytest.raises(SunSpecError, match="no symbol 'MAYBE'"):
        get_model(704).point("WSetEna").symbol_value("MAYBE")


_INT_TYPES = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "acc32", "acc64",
              "enum16", "bitfield32", "sunssf"]  # fmt: skip


def _point(type_: str) -> Point:
    size = {"int16": 1, "uint16": 1, "enum16": 1, "sunssf": 1}.get(type_, 2)
    size = 4 if type_ in ("int64", "uint64", "acc64") else size
    return Point(name="X", offset=0, size=size, type=type_)


@given(st.sampled_from(_INT_TYPES), st.data())
def test_integer_round_trip_through_registers(type_: str, data: st.DataObject) -> None:
    point = _point(type_)
    low, high = raw_range(type_)
    raw = data.draw(st.integers(low, high))
    words = encode_raw(point, raw)
    assert len(words) == point.size
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode_raw(point, words) == raw


@pytest.mark.parametrize("type_", _INT_TYPES)
def test_not_implemented_marker_round_trips_as_none(type_: str) -> None:
    point = _point(type_)
    words = encode_raw(point, None)
    if type_.startswith("acc"):
        assert words == [0] * point.size  # accumulators use 0, which reads back as 0
        return
    assert decode_raw(point, words) is None
    assert int.from_bytes(b"".join(w.to_bytes(2, "big") for w in words), "big", signed=False) == (
        NOT_IMPLEMENTED[type_] & ((1 << (16 * point.size)) - 1)
    )


def test_big_endian_word_order_and_twos_complement() -> None:
    assert encode_raw(_point("int32"), -2) == [0xFFFF, 0xFFFE]
    assert encode_raw(_point("uint32"), 0x12345678) == [0x1234, 0x5678]
    assert decode_raw(_point("int16"), [0x8001]) == -32767
    assert encode_raw(_point("int16"), -0x8000 + 1) == [0x8001]


def test_values_outside_the_type_are_refused() -> None:
    with pytest.raises(SunSpecError, match="outside"):
        encode_raw(_point("int16"), 40000)
    with pytest.raises(SunSpecError, match="outside"):
        encode_raw(_point("uint16"), 0xFFFF)  # the not-implemented marker is not a value


def test_strings_are_nul_padded_ascii() -> None:
    point = Point(name="Mn", offset=0, size=4, type="string")
    words = encode_raw(point, "abc")
    assert words == [0x6162, 0x6300, 0, 0]
    assert decode_raw(point, words) == "abc"
    with pytest.raises(SunSpecError, match="at most 8 characters"):
        encode_raw(point, "123456789")


@given(st.floats(-3e4, 3e4, allow_nan=False), st.integers(-3, 3))
def test_scale_factor_round_trip_within_half_a_step(value: float, sf: int) -> None:
    raw = to_raw(value, sf)
    back = from_raw(raw, sf)
    assert abs(back - value) <= 0.5 * 10.0**sf * (1 + 1e-9)
    assert quantize(back, sf) == back  # quantizing twice changes nothing


def test_choose_scale_factor_keeps_values_in_range() -> None:
    assert choose_scale_factor(50_000.0, "int16", decimals=0) == 1
    assert choose_scale_factor(30_000.0, "int16", decimals=0) == 0
    assert choose_scale_factor(100.0, "uint16", decimals=2) == -2
    for magnitude in (0.5, 12.0, 999.0, 65_000.0, 3.2e6):
        sf = choose_scale_factor(magnitude, "int16")
        assert to_raw(magnitude, sf) <= 32767
        assert to_raw(-magnitude, sf) >= -32767


def test_map_layout_marker_chain_and_end() -> None:
    models = [get_model(m) for m in (1, 701, 704)]
    image = SunSpecMap(models, base=40000)
    assert image.read(40000, 2) == [0x5375, 0x6E53]
    address = 40002
    for model in models:
        assert image.read(address, 2) == [model.id, model.length]
        address += 2 + model.length
    assert image.read(address, 2) == [0xFFFF, 0]
    assert image.end == address + 2
    with pytest.raises(SunSpecError, match="outside the map"):
        image.read(image.end - 1, 2)


def test_block_scaling_and_symbols() -> None:
    image = SunSpecMap([get_model(1), get_model(701)])
    block = image.block(701)
    assert block.get("W") is None  # not implemented until written
    block.set_raw("W_SF", 1)
    block.set("W", -12_345.0)
    assert block.get_raw("W") == -1234
    assert block.get("W") == -12_340.0
    block.set_symbol("InvSt", "FAULT")
    assert block.symbol("InvSt") == "FAULT"
    block.set_bits("Alrm", ["GROUND_FAULT", "MANUFACTURER_ALRM"])
    assert block.get_raw("Alrm") == (1 << 0) | (1 << 16)
    copy = ModelBlock.from_registers(get_model(701), block.address, block.registers)
    assert copy.get("W") == -12_340.0
    assert image.locate(block.address_of("W")) == (block, get_model(701).point("W"))
    assert math.isclose(float(copy.get("W") or 0), -12_340.0)
