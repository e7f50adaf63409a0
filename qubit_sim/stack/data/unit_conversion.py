"""Unit conversion for power, energy, voltage and current, and current -> power.

Units are the Qubit ``measurement_unit`` spellings and are **case-sensitive**: ``MW`` is a
megawatt, and ``mW`` (a milliwatt) is not a unit here, so ``"mw"`` is refused with a "did you
mean" rather than guessed. Conversions scale by exact powers of ten (multiplying or dividing by
``10**n``), so a round trip returns the value to within one rounding step.

Power from current uses phase-to-neutral voltage: ``P = V * I * phases * power_factor``.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import numpy as np

from qubit_sim.stack.data.errors import DataError, UnitError

__all__ = [
    "BASE_UNITS",
    "UNITS",
    "convert",
    "current_to_power_kw",
    "power_to_current_a",
    "quantity_of",
    "to_amperes",
    "to_kw",
    "to_kwh",
    "to_volts",
    "unit_factor",
]

UNITS: dict[str, dict[str, int]] = {
    "power": {"W": 0, "kW": 3, "MW": 6, "GW": 9},
    "energy": {"Wh": 0, "kWh": 3, "MWh": 6, "GWh": 9},
    "voltage": {"V": 0, "kV": 3},
    "current": {"A": 0, "kA": 3},
}
"""Quantity -> unit -> power of ten relative to the SI unit (W, Wh, V, A)."""

BASE_UNITS: dict[str, str] = {"power": "kW", "energy": "kWh", "voltage": "V", "current": "A"}
"""The unit each quantity is normalised to (kW and kWh, as everywhere in qubit-sim)."""

_QUANTITY = {unit: quantity for quantity, table in UNITS.items() for unit in table}


def _unknown(unit: Any, quantity: str | None) -> UnitError:
    known = list(UNITS[quantity]) if quantity else list(_QUANTITY)
    what = f"{quantity} unit" if quantity else "unit"
    if not isinstance(unit, str):
        return UnitError(f"{what} must be a string such as {known[1]!r}, got {unit!r}")
    by_lower = {name.lower(): name for name in known}
    close = difflib.get_close_matches(unit.strip().lower(), list(by_lower), n=2, cutoff=0.6)
    guesses = [by_lower[name] for name in close]
    hint = f"; did you mean {guesses[0]!r}?" if guesses else "."
    return UnitError(
        f"unknown {what} {unit!r}{hint} Units are case-sensitive (MW is a megawatt); "
        f"known: {', '.join(known)}"
    )


def quantity_of(unit: str) -> str:
    """``"power"``, ``"energy"``, ``"voltage"`` or ``"current"`` for a known unit.

    Raises:
        UnitError: for an unknown unit, with a "did you mean".
    """
    quantity = _QUANTITY.get(unit) if isinstance(unit, str) else None
    if quantity is None:
        raise _unknown(unit, None)
    return quantity


def _exponent(unit: str, quantity: str) -> int:
    table = UNITS[quantity]
    if not isinstance(unit, str) or unit not in table:
        if isinstance(unit, str) and unit in _QUANTITY:
            raise UnitError(
                f"{unit!r} is a unit of {_QUANTITY[unit]}, not of {quantity} ({', '.join(table)})"
            )
        raise _unknown(unit, quantity)
    return table[unit]


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise DataError(f"{what} must be a number, got {value!r}")
    return float(value)


def _scale(value: float, shift: int) -> float:
    return value * 10**shift if shift >= 0 else value / 10 ** (-shift)


def unit_factor(from_unit: str, to_unit: str) -> float:
    """Multiplier taking a value in ``from_unit`` to ``to_unit`` (e.g. ``"MW", "kW" -> 1000.0``).

    Raises:
        UnitError: unknown units, or units of different quantities.
    """
    quantity = quantity_of(from_unit)
    return _scale(1.0, _exponent(from_unit, quantity) - _exponent(to_unit, quantity))


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert ``value`` between two units of the same quantity.

    Raises:
        UnitError: unknown units, or units of different quantities (``"kW"`` -> ``"kWh"``).
        DataError: ``value`` is not a number.
    """
    quantity = quantity_of(from_unit)
    shift = _exponent(from_unit, quantity) - _exponent(to_unit, quantity)
    return _scale(_number(value, "value"), shift)


def to_kw(value: float, unit: str) -> float:
    """Power [kW] of ``value`` given in W, kW, MW or GW."""
    return _scale(_number(value, "power"), _exponent(unit, "power") - 3)


def to_kwh(value: float, unit: str) -> float:
    """Energy [kWh] of ``value`` given in Wh, kWh, MWh or GWh."""
    return _scale(_number(value, "energy"), _exponent(unit, "energy") - 3)


def to_volts(value: float, unit: str) -> float:
    """Voltage [V] of ``value`` given in V or kV."""
    return _scale(_number(value, "voltage"), _exponent(unit, "voltage"))


def to_amperes(value: float, unit: str) -> float:
    """Current [A] of ``value`` given in A or kA."""
    return _scale(_number(value, "current"), _exponent(unit, "current"))


def _check_circuit(voltage_v: float, phases: int, power_factor: float) -> None:
    if not voltage_v > 0 or not math.isfinite(voltage_v):
        raise DataError(f"voltage must be positive and finite, got {voltage_v} V")
    if isinstance(phases, bool) or phases not in (1, 2, 3):
        raise DataError(f"phases must be 1, 2 or 3, got {phases!r}")
    if not 0 < power_factor <= 1:
        raise DataError(f"power_factor must be in (0, 1], got {power_factor!r}")


def current_to_power_kw(
    current: float,
    *,
    voltage: float,
    phases: int,
    power_factor: float = 1.0,
    current_unit: str = "A",
    voltage_unit: str = "V",
) -> float:
    """Active power [kW] drawn by ``current`` per phase at phase-to-neutral ``voltage``.

    ``P = V * I * phases * power_factor``; the sign of the current is kept.

    Args:
        current: Current per phase, in ``current_unit`` (A or kA).
        voltage: Phase-to-neutral voltage, in ``voltage_unit`` (V or kV).
        phases: Phases carrying the current: 1, 2 or 3.
        power_factor: Displacement power factor in (0, 1].

    Raises:
        UnitError: unknown units. DataError: a non-positive voltage, bad phases or power factor.
    """
    current_a = to_amperes(current, current_unit)
    voltage_v = to_volts(voltage, voltage_unit)
    power_factor = _number(power_factor, "power_factor")
    _check_circuit(voltage_v, phases, power_factor)
    return voltage_v * current_a * phases * power_factor / 1000.0


def power_to_current_a(
    power: float,
    *,
    voltage: float,
    phases: int,
    power_factor: float = 1.0,
    power_unit: str = "kW",
    voltage_unit: str = "V",
) -> float:
    """Current per phase [A] that carries ``power`` at phase-to-neutral ``voltage``.

    The inverse of :func:`current_to_power_kw`.
    """
    power_w = to_kw(power, power_unit) * 1000.0
    voltage_v = to_volts(voltage, voltage_unit)
    power_factor = _number(power_factor, "power_factor")
    _check_circuit(voltage_v, phases, power_factor)
    return power_w / (voltage_v * phases * power_factor)
