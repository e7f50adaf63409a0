"""Unit conversion: known values, round trips, current -> power, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qubit_sim.errors import QubitSimError
from qubit_sim.stack.data import (
    DataError,
    UnitError,
    convert,
    current_to_power_kw,
    power_to_current_a,
    quantity_of,
    to_amperes,
    to_kw,
    to_kwh,
    to_volts,
    unit_factor,
)
from qubit_sim.stack.data.unit_conversion import UNITS

_magnitudes = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_subnormal=False)
_pairs = st.sampled_from(sorted(UNITS)).flatmap(
    lambda quantity: st.tuples(*(st.sampled_from(sorted(UNITS[quantity])) for _ in range(3)))
)


@pytest.mark.parametrize(
    ("function", "value", "unit", "expected"),
    [
        (to_kw, 5000, "W", 5.0),
        (to_kw, 2.5, "MW", 2500.0),
        (to_kw, 0.001, "GW", 1000.0),
        (to_kwh, 1, "GWh", 1e6),
        (to_kwh, 750, "Wh", 0.75),
        (to_volts, 11, "kV", 11000.0),
        (to_amperes, 1.2, "kA", 1200.0),
        (to_kw, np.float32(3.0), "kW", 3.0),
    ],
)
def test_known_conversions(function, value, unit, expected) -> None:  # type: ignore[no-untyped-def]
    result = function(value, unit)
    assert type(result) is float
    assert result == pytest.approx(expected, rel=1e-15)


@given(value=_magnitudes, units=_pairs)
def test_round_trips_and_chains_agree(value: float, units: tuple[str, str, str]) -> None:
    first, second, third = units
    there = convert(value, first, second)
    assert convert(there, second, first) == pytest.approx(value, rel=1e-15, abs=1e-300)
    assert convert(there, second, third) == pytest.approx(
        convert(value, first, third), rel=1e-15, abs=1e-300
    )
    assert there == pytest.approx(value * unit_factor(first, second), rel=1e-15, abs=1e-300)


@pytest.mark.parametrize(
    ("unit", "suggestion"), [("kw", "'kW'"), ("mw", "'MW'"), ("KWH", "'kWh'"), ("kWhh", "'kWh'")]
)
def test_unknown_units_get_a_did_you_mean(unit: str, suggestion: str) -> None:
    with pytest.raises(UnitError, match=f"did you mean {suggestion}") as caught:
        quantity_of(unit)
    assert "case-sensitive" in str(caught.value)
    assert isinstance(caught.value, QubitSimError) and isinstance(caught.value, ValueError)


def test_units_of_different_quantities_do_not_convert() -> None:
    with pytest.raises(UnitError, match="'kWh' is a unit of energy, not of power"):
        convert(1.0, "kW", "kWh")
    with pytest.raises(UnitError, match="unknown power unit 'hp'"):
        to_kw(1.0, "hp")


@pytest.mark.parametrize("value", ["5", True, None])
def test_values_must_be_numbers(value: object) -> None:
    with pytest.raises(DataError, match="must be a number"):
        to_kw(value, "W")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "voltage", "phases", "pf", "expected_kw"),
    [
        (32, 230, 3, 1.0, 22.08),  # a 22 kW wallbox
        (16, 230, 1, 0.95, 3.496),
        (-10, 230, 3, 1.0, -6.9),  # the sign of the current is kept
    ],
)
def test_current_to_power_phase_to_neutral(
    current: float, voltage: float, phases: int, pf: float, expected_kw: float
) -> None:
    power_kw = current_to_power_kw(current, voltage=voltage, phases=phases, power_factor=pf)
    assert power_kw == pytest.approx(expected_kw, rel=1e-12)


def test_current_to_power_converts_units_first() -> None:
    assert current_to_power_kw(
        0.032, current_unit="kA", voltage=0.23, voltage_unit="kV", phases=3
    ) == pytest.approx(22.08, rel=1e-12)
    assert power_to_current_a(22080, power_unit="W", voltage=230, phases=3) == pytest.approx(32.0)


@given(
    current=st.floats(min_value=-1e4, max_value=1e4, allow_nan=False),
    voltage=st.floats(min_value=1.0, max_value=1e5),
    phases=st.sampled_from([1, 2, 3]),
    pf=st.floats(min_value=0.05, max_value=1.0),
)
def test_power_to_current_inverts_current_to_power(
    current: float, voltage: float, phases: int, pf: float
) -> None:
    power_kw = current_to_power_kw(current, voltage=voltage, phases=phases, power_factor=pf)
    assert power_kw == pytest.approx(voltage * current * phases * pf / 1000, rel=1e-12, abs=1e-12)
    back = power_to_current_a(power_kw, voltage=voltage, phases=phases, power_factor=pf)
    assert math.isclose(back, current, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"voltage": 0, "phases": 3}, "voltage must be positive"),
        ({"voltage": 230, "phases": 4}, "phases must be 1, 2 or 3"),
        ({"voltage": 230, "phases": True}, "phases must be 1, 2 or 3"),
        ({"voltage": 230, "phases": 3, "power_factor": 0.0}, "power_factor"),
        ({"voltage": 230, "phases": 3, "power_factor": 1.2}, "power_factor"),
    ],
)
def test_bad_circuits_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        current_to_power_kw(10, **kwargs)
