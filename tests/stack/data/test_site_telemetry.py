"""Live telemetry through the L1 adapters: native units in, quality-flagged base units out."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qubit_sim.stack.data.errors import TelemetryError
from qubit_sim.stack.data.site_telemetry import QUALITIES, RawReading, TelemetryValidator

CHARGER = "ast_charger_cp1"
BATTERY = "ast_battery_b1"


def test_native_units_become_kw_kwh_and_fractions() -> None:
    v = TelemetryValidator()
    power = v.validate(RawReading(CHARGER, "power", 7400.0, "W", 0), 0)
    energy = v.validate(RawReading(CHARGER, "energy", 12_345.0, "Wh", 0), 0)
    soc = v.validate(RawReading(BATTERY, "soc", 55.5, "percent", 0), 0)
    mw = v.validate(RawReading(BATTERY, "power", -0.25, "MW", 0), 0)
    assert (power.value, power.quality) == (7.4, "measured")
    assert (energy.value, energy.quality) == (12.345, "measured")
    assert soc.value == pytest.approx(0.555) and soc.usable
    assert mw.value == -250.0
    assert v.summary() == {
        "measured": 4,
        "estimated": 0,
        "interpolated": 0,
        "missing": 0,
        "error": 0,
    }


def test_missing_and_out_of_range_points_are_flagged_not_measured() -> None:
    v = TelemetryValidator()
    nothing = v.validate(RawReading(BATTERY, "soc", None, "percent", 0), 0)
    nan = v.validate(RawReading(BATTERY, "power", math.nan, "W", 0), 0)
    high = v.validate(RawReading(BATTERY, "soc", 130.0, "percent", 0), 0)
    wrong_unit = v.validate(RawReading(BATTERY, "power", 1.0, "kWh", 0), 0)
    assert (nothing.quality, nothing.flags) == ("missing", ("communication_error",))
    assert nan.quality == "missing" and nan.value is None
    assert (high.quality, high.flags) == ("error", ("out_of_range",))
    assert wrong_unit.quality == "error"
    assert not any(p.usable for p in (nothing, nan, high, wrong_unit))
    assert v.counts["missing"] == 2 and v.counts["error"] == 2


def test_a_register_that_runs_backwards_is_an_error() -> None:
    v = TelemetryValidator()
    assert v.validate(RawReading(CHARGER, "energy", 5.0, "kWh", 0), 0).usable
    back = v.validate(RawReading(CHARGER, "energy", 4.0, "kWh", 60), 60)
    assert (back.quality, back.flags) == ("error", ("out_of_range",))
    assert v.validate(RawReading(CHARGER, "energy", 5.5, "kWh", 120), 120).usable


def test_an_old_reading_and_a_frozen_register_are_flagged_frozen() -> None:
    v = TelemetryValidator(max_age_s=60)
    old = v.validate(RawReading(CHARGER, "power", 7000.0, "W", 0), 900)
    assert (old.quality, old.flags) == ("error", ("frozen_value",))
    # 11 kW drawn, but the register has not moved in 15 minutes: the meter is frozen.
    v.validate(RawReading(CHARGER, "power", 11_000.0, "W", 0), 0)
    v.validate(RawReading(CHARGER, "energy", 1000.0, "Wh", 0), 0)
    v.validate(RawReading(CHARGER, "power", 11_000.0, "W", 900), 900)
    stuck = v.validate(RawReading(CHARGER, "energy", 1000.0, "Wh", 900), 900)
    assert (stuck.quality, stuck.flags) == ("error", ("frozen_value",))
    # An idle charger's register legitimately stands still.
    idle = TelemetryValidator(max_age_s=60)
    idle.validate(RawReading(CHARGER, "power", 0.0, "W", 0), 0)
    idle.validate(RawReading(CHARGER, "energy", 1000.0, "Wh", 0), 0)
    idle.validate(RawReading(CHARGER, "power", 0.0, "W", 900), 900)
    assert idle.validate(RawReading(CHARGER, "energy", 1000.0, "Wh", 900), 900).usable


def test_the_fallback_is_the_last_measured_value_flagged_estimated() -> None:
    v = TelemetryValidator()
    assert v.estimate(BATTERY, "soc") is None
    v.validate(RawReading(BATTERY, "soc", 40.0, "percent", 300), 300)
    v.validate(RawReading(BATTERY, "soc", None, "percent", 600), 600)
    estimate = v.estimate(BATTERY, "soc")
    assert estimate is not None
    assert (estimate.value, estimate.quality, estimate.time_s) == (0.4, "estimated", 300)
    v.forget(BATTERY, "soc")
    assert v.estimate(BATTERY, "soc") is None


def test_bad_settings_and_quantities_raise_clear_errors() -> None:
    with pytest.raises(TelemetryError, match="max_age_s"):
        TelemetryValidator(max_age_s=-1)
    with pytest.raises(TelemetryError, match="quantity 'voltage'"):
        TelemetryValidator().validate(RawReading(CHARGER, "voltage", 230.0, "V", 0), 0)
    assert QUALITIES[0] == "measured"


@given(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False))
def test_any_finite_power_in_watts_is_measured_in_kilowatts(watts: float) -> None:
    point = TelemetryValidator().validate(RawReading(CHARGER, "power", watts, "W", 5), 5)
    assert point.usable and point.value == watts / 1000.0


@given(st.integers(min_value=0, max_value=10_000))
def test_a_sunspec_soc_register_reads_as_the_modbus_client_reports_it(raw: int) -> None:
    # SunSpec SoC at scale factor -2, as ModbusLink decodes it: raw / 100 [%] / 100.0 + 0.0.
    percent = raw / 10.0**2
    point = TelemetryValidator().validate(RawReading(BATTERY, "soc", percent, "percent", 0), 0)
    assert point.usable and point.value == percent / 100.0 + 0.0
