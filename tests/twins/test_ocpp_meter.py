"""Meter samples on the wire: both encodings validate against the OCPP schemas and round-trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocpp.charge_point import camel_to_snake_case
from ocpp.messages import Call, _validate_payload

from qubit_sim.protocols.ocpp_meter import (
    MeterSample,
    decode_sampled_values,
    encode_sampled_values,
    floor_wh,
)

STAMP = "2025-01-01T00:01:00.000Z"

samples = st.builds(
    MeterSample,
    timestamp=st.just(STAMP),
    energy_wh=st.floats(0.0, 1e8),
    power_w=st.floats(0.0, 350_000.0),
    current_a=st.lists(st.floats(0.0, 500.0), min_size=0, max_size=3).map(tuple),
    voltage_v=st.lists(st.floats(100.0, 500.0), min_size=0, max_size=3).map(tuple),
    soc=st.one_of(st.none(), st.floats(0.0, 1.0)),
)


def _payload(version: str, sample: MeterSample) -> Call:
    values = {"timestamp": sample.timestamp, "sampledValue": encode_sampled_values(sample, version)}
    if version == "1.6":
        return Call(
            "1", "MeterValues", {"connectorId": 1, "transactionId": 3, "meterValue": [values]}
        )
    return Call("1", "MeterValues", {"evseId": 1, "meterValue": [values]})


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@given(sample=samples)
def test_encoded_samples_are_schema_valid_and_decode_back(
    version: str, sample: MeterSample
) -> None:
    call = _payload(version, sample)
    _validate_payload(call, version)  # raises on any schema violation
    received = camel_to_snake_case(call.payload)["meter_value"][0]
    back = decode_sampled_values(received["timestamp"], received["sampled_value"])
    assert back.energy_wh == pytest.approx(floor_wh(sample.energy_wh or 0.0), abs=1e-6)
    assert back.energy_wh <= sample.energy_wh + 1e-9  # rounded down, never up
    assert back.power_w == pytest.approx(sample.power_w, abs=0.05 + 1e-9)
    assert back.current_a == pytest.approx(sample.current_a, abs=0.0005 + 1e-9)
    assert back.voltage_v == pytest.approx(sample.voltage_v, abs=0.005 + 1e-9)
    if sample.soc is None:
        assert back.soc is None
    else:
        assert back.soc == pytest.approx(sample.soc, abs=0.0005 + 1e-9)


@given(a=st.floats(0.0, 1e9), b=st.floats(0.0, 1e9))
def test_floor_wh_is_monotone(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert floor_wh(low) <= floor_wh(high)
    assert high - floor_wh(high) < 0.1 + 1e-6


def test_decoder_honours_units_multipliers_and_per_phase_power() -> None:
    entries = [
        {"value": "12.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        {
            "value": 2.0,
            "measurand": "Power.Active.Import",
            "phase": "L1",
            "unit_of_measure": {"unit": "kW"},
        },
        {
            "value": 30.0,
            "measurand": "Power.Active.Import",
            "phase": "L2",
            "unit_of_measure": {"unit": "W", "multiplier": 2},
        },
        {"value": "7", "measurand": "Temperature", "unit": "Celsius"},
        {"value": "80", "measurand": "SoC", "unit": "Percent"},
    ]
    sample = decode_sampled_values(STAMP, entries)
    assert sample.energy_wh == pytest.approx(12_500.0)
    assert sample.power_w == pytest.approx(2_000.0 + 3_000.0)
    assert sample.soc == pytest.approx(0.8)
    # An entry without a measurand is the energy register (the OCPP default).
    assert decode_sampled_values(STAMP, [{"value": "5", "unit": "Wh"}]).energy_wh == 5.0
    with pytest.raises(ValueError):
        decode_sampled_values(STAMP, [{"value": "many"}])
