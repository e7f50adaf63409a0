"""Meter samples and their OCPP encodings (1.6 ``sampledValue`` strings, 2.0.1 numbers).

A :class:`MeterSample` is one snapshot of a connector's meter. Encoding rounds each quantity to a
fixed resolution so that the per-phase identity ``P = sum(V_i * I_i)`` survives the trip within
a fraction of a watt, and the energy register is rounded *down* so it never decreases.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MeterSample",
    "decode_sampled_values",
    "encode_sampled_values",
    "floor_wh",
]

_PHASES = ("L1", "L2", "L3")
_MULTIPLIER = {"Wh": 1.0, "kWh": 1000.0, "W": 1.0, "kW": 1000.0, "A": 1.0, "V": 1.0}


def floor_wh(e_wh: float) -> float:
    """Energy register [Wh] rounded down to 0.1 Wh (monotone, so a register never goes back)."""
    return math.floor(e_wh * 10.0 + 1e-9) / 10.0


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One meter snapshot of a connector.

    Attributes:
        timestamp: ISO 8601 UTC instant of the sample.
        energy_wh: Energy.Active.Import.Register [Wh].
        power_w: Power.Active.Import, all phases [W].
        current_a: Current.Import per phase L1..L3 [A].
        voltage_v: Voltage per phase L1-N..L3-N [V].
        soc: EV state of charge [fraction 0..1], ``None`` when the EV does not report it.
    """

    timestamp: str
    energy_wh: float | None = None
    power_w: float | None = None
    current_a: tuple[float, ...] = ()
    voltage_v: tuple[float, ...] = ()
    soc: float | None = None


def _entry(
    version: str,
    value: float,
    digits: int,
    measurand: str,
    unit: str,
    context: str,
    phase: str | None = None,
    location: str = "Outlet",
) -> dict[str, Any]:
    rounded = round(value, digits)
    entry: dict[str, Any] = {"context": context, "measurand": measurand, "location": location}
    if version == "1.6":
        entry["value"] = f"{rounded:.{digits}f}"
        entry["unit"] = unit
    else:
        entry["value"] = rounded
        entry["unitOfMeasure"] = {"unit": unit}
    if phase is not None:
        entry["phase"] = phase
    return entry


def encode_sampled_values(
    sample: MeterSample, version: str, context: str = "Sample.Periodic"
) -> list[dict[str, Any]]:
    """The ``sampledValue`` list (camelCase keys) of ``sample`` for OCPP ``version``."""
    values: list[dict[str, Any]] = []
    if sample.energy_wh is not None:
        e_wh = floor_wh(sample.energy_wh)
        values.append(_entry(version, e_wh, 1, "Energy.Active.Import.Register", "Wh", context))
    if sample.power_w is not None:
        values.append(_entry(version, sample.power_w, 1, "Power.Active.Import", "W", context))
    for phase, amps in zip(_PHASES, sample.current_a, strict=False):
        values.append(_entry(version, amps, 3, "Current.Import", "A", context, phase))
    for phase, volts in zip(_PHASES, sample.voltage_v, strict=False):
        values.append(_entry(version, volts, 2, "Voltage", "V", context, f"{phase}-N"))
    if sample.soc is not None:
        values.append(
            _entry(version, sample.soc * 100.0, 1, "SoC", "Percent", context, location="EV")
        )
    return values


def _get(entry: Mapping[str, Any], snake: str, camel: str) -> Any:
    return entry.get(snake, entry.get(camel))


def _scaled(entry: Mapping[str, Any]) -> float:
    """Value of one sampled value in base units (Wh, W, A, V, %)."""
    value = float(entry["value"])
    unit_obj = _get(entry, "unit_of_measure", "unitOfMeasure")
    if isinstance(unit_obj, Mapping):
        unit = unit_obj.get("unit")
        value *= 10.0 ** float(unit_obj.get("multiplier", 0))
    else:
        unit = entry.get("unit")
    if unit is not None:
        value *= _MULTIPLIER.get(str(unit), 1.0)
    return value


def _phase_index(phase: Any) -> int | None:
    if not isinstance(phase, str):
        return None
    head = phase.split("-")[0]
    return _PHASES.index(head) if head in _PHASES else None


def decode_sampled_values(timestamp: str, entries: Iterable[Mapping[str, Any]]) -> MeterSample:
    """Read a ``sampledValue`` list (snake_case or camelCase keys) back into a sample.

    The default measurand (no ``measurand`` key) is Energy.Active.Import.Register, as in both
    versions. Entries this package does not model (reactive power, temperature, ...) are ignored.

    Raises:
        ValueError: when a value is not a number.
    """
    energy_wh: float | None = None
    power_total: float | None = None
    power_phases: dict[int, float] = {}
    currents: dict[int, float] = {}
    voltages: dict[int, float] = {}
    soc: float | None = None
    for entry in entries:
        measurand = entry.get("measurand", "Energy.Active.Import.Register")
        value = _scaled(entry)
        index = _phase_index(entry.get("phase"))
        if measurand == "Energy.Active.Import.Register":
            energy_wh = value
        elif measurand == "Power.Active.Import":
            if index is None:
                power_total = value
            else:
                power_phases[index] = value
        elif measurand == "Current.Import":
            currents[0 if index is None else index] = value
        elif measurand == "Voltage":
            voltages[0 if index is None else index] = value
        elif measurand == "SoC":
            soc = value / 100.0
    if power_total is None and power_phases:
        power_total = sum(power_phases.values())
    return MeterSample(
        timestamp=timestamp,
        energy_wh=energy_wh,
        power_w=power_total,
        current_a=tuple(currents[i] for i in sorted(currents)),
        voltage_v=tuple(voltages[i] for i in sorted(voltages)),
        soc=soc,
    )
