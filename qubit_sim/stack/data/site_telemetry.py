"""Live device telemetry through the L1 adapters: native units in, quality-flagged kW/kWh/SOC out.

A run's devices report readings in their own units (a charger meter in W and a Wh register, a
SunSpec battery in W and SoC %, a PV inverter in W). :class:`TelemetryValidator` turns each
:class:`RawReading` into a :class:`TelemetryPoint` in the base units of the stack (kW, kWh, SOC as a
fraction) with one Qubit ``data_quality``, by these rules, in order:

1. no value (``None``) or NaN -> ``missing`` (flag ``communication_error`` when nothing came);
2. the unit does not fit the quantity -> ``error``;
3. value infinite or outside the quantity's physical range (SOC 0..1, a register >= 0) ->
   ``error`` with flag ``out_of_range``;
4. an energy register below the highest earlier valid value of the same asset -> ``error`` with
   flag ``out_of_range`` (a meter does not run backwards);
5. the reading was taken more than ``max_age_s`` before now (a meter that stopped reporting), or
   an energy register has not moved for more than ``max_age_s`` although the asset's last
   measured power should have moved it by at least ``frozen_min_wh`` (a frozen meter) ->
   ``error`` with flag ``frozen_value``;
6. otherwise ``measured``.

Only ``measured`` points are *usable*. :meth:`TelemetryValidator.estimate` is the fallback for
an unusable point: the last usable value of the same asset and quantity, re-flagged
``estimated`` (``None`` when there never was one). Every point is counted by quality
(:attr:`TelemetryValidator.counts`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace

from qubit_sim.stack.data.errors import TelemetryError, UnitError
from qubit_sim.stack.data.unit_conversion import to_kw, to_kwh

__all__ = [
    "QUALITIES",
    "QUANTITIES",
    "RawReading",
    "TelemetryPoint",
    "TelemetryValidator",
]

QUANTITIES: dict[str, str] = {"power": "kW", "energy": "kWh", "soc": "fraction"}
"""Quantity -> the base unit its points carry."""

QUALITIES = ("measured", "estimated", "interpolated", "missing", "error")
"""The qualities a live point can get (Qubit ``data_quality`` values), in report order."""

_SOC_UNITS = ("fraction", "percent")


@dataclass(frozen=True)
class RawReading:
    """One reading as a device reports it.

    Attributes:
        asset_id: The device (``ast_...``).
        quantity: ``"power"``, ``"energy"`` (a cumulative register) or ``"soc"``.
        value: The number in ``unit``; ``None`` when the device sent nothing.
        unit: Native unit: ``W``/``kW``/``MW``, ``Wh``/``kWh``/``MWh``, ``percent``/``fraction``.
        time_s: Simulated time the device took the reading [s]; ``None`` if it did not say.
    """

    asset_id: str
    quantity: str
    value: float | None
    unit: str
    time_s: int | None = None


@dataclass(frozen=True)
class TelemetryPoint:
    """A validated reading in the stack's base units.

    Attributes:
        asset_id / quantity: As in the reading.
        value: In :data:`QUANTITIES` units [kW, kWh, fraction]; ``None`` when missing.
        quality: A Qubit ``data_quality`` (see :data:`QUALITIES`).
        time_s: When the reading was taken [s] (for an estimate: when the value was measured).
        flags: Qubit TimeSeries flags (``out_of_range``, ``frozen_value``, ...).
    """

    asset_id: str
    quantity: str
    value: float | None
    quality: str
    time_s: int | None
    flags: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        """Whether the stack may take the value as the device's state (``measured``)."""
        return self.quality == "measured"


def _base_value(reading: RawReading) -> float:
    """The reading's value in its quantity's base unit (raises UnitError on a wrong unit)."""
    value = float(reading.value)  # type: ignore[arg-type]  # None handled by the caller
    if reading.quantity == "power":
        return to_kw(value, reading.unit)
    if reading.quantity == "energy":
        return to_kwh(value, reading.unit)
    if reading.unit not in _SOC_UNITS:
        raise UnitError(f"SOC unit {reading.unit!r} is not one of {list(_SOC_UNITS)}")
    # "+ 0.0" and the division (not * 0.01) match what a SunSpec client reports bit for bit.
    return value / 100.0 + 0.0 if reading.unit == "percent" else value


class TelemetryValidator:
    """Validates live readings and keeps what the fallback needs (see the module docstring).

    Args:
        max_age_s: Oldest reading still taken as current [s] (the Qubit ``stale_state_seconds``).
        soc_tolerance: Slack on the SOC range [fraction], for rounding on the wire.
        frozen_min_wh: Least energy [Wh] the last measured power must imply before a register
            that did not move counts as frozen (whole-Wh registers move in 1 Wh steps).
    """

    def __init__(
        self, max_age_s: float = 60.0, soc_tolerance: float = 1e-9, frozen_min_wh: float = 2.0
    ) -> None:
        if not (math.isfinite(max_age_s) and max_age_s >= 0):
            raise TelemetryError(f"max_age_s = {max_age_s!r} must be a finite number >= 0 [s]")
        self.max_age_s = float(max_age_s)
        self.soc_tolerance = float(soc_tolerance)
        self.frozen_min_wh = float(frozen_min_wh)
        self.counts: Counter[str] = Counter()
        self.flags: Counter[str] = Counter()
        self._good: dict[tuple[str, str], TelemetryPoint] = {}
        self._register_high: dict[str, float] = {}

    def validate(self, reading: RawReading, now_s: int) -> TelemetryPoint:
        """The reading as a quality-flagged point in base units; counted.

        Raises:
            TelemetryError: unknown quantity (a programming error, not a data problem).
        """
        if reading.quantity not in QUANTITIES:
            raise TelemetryError(
                f"{reading.asset_id}: quantity {reading.quantity!r} is not one of "
                f"{list(QUANTITIES)}"
            )
        point = self._judge(reading, now_s)
        self.counts[point.quality] += 1
        self.flags.update(point.flags)
        if point.usable:
            self._good[(point.asset_id, point.quantity)] = point
            if point.quantity == "energy" and point.value is not None:
                self._register_high[point.asset_id] = point.value
        return point

    def _judge(self, reading: RawReading, now_s: int) -> TelemetryPoint:
        def point(value: float | None, quality: str, *flags: str) -> TelemetryPoint:
            return TelemetryPoint(
                reading.asset_id, reading.quantity, value, quality, reading.time_s, flags
            )

        if reading.value is None:
            return point(None, "missing", "communication_error")
        if isinstance(reading.value, float) and math.isnan(reading.value):
            return point(None, "missing")
        try:
            value = _base_value(reading)
        except (UnitError, TypeError, ValueError):
            return point(None, "error")
        if not math.isfinite(value):
            return point(None, "error", "out_of_range")
        if reading.quantity == "soc" and not (
            -self.soc_tolerance <= value <= 1.0 + self.soc_tolerance
        ):
            return point(value, "error", "out_of_range")
        if reading.quantity == "energy" and (
            value < 0.0 or value < self._register_high.get(reading.asset_id, 0.0)
        ):
            return point(value, "error", "out_of_range")
        if reading.time_s is not None and now_s - reading.time_s > self.max_age_s:
            return point(value, "error", "frozen_value")
        if reading.quantity == "energy" and self._register_stuck(reading, value, now_s):
            return point(value, "error", "frozen_value")
        return point(value, "measured")

    def _register_stuck(self, reading: RawReading, value: float, now_s: int) -> bool:
        last = self._good.get((reading.asset_id, "energy"))
        power = self._good.get((reading.asset_id, "power"))
        if last is None or power is None or last.value != value or last.time_s is None:
            return False
        elapsed_s = (reading.time_s if reading.time_s is not None else now_s) - last.time_s
        implied_wh = abs(power.value or 0.0) * 1000.0 * elapsed_s / 3600.0
        return elapsed_s > self.max_age_s and implied_wh >= self.frozen_min_wh

    def estimate(self, asset_id: str, quantity: str) -> TelemetryPoint | None:
        """Fallback for an unusable point: the last measured value, flagged ``estimated``."""
        good = self._good.get((asset_id, quantity))
        if good is None:
            return None
        return replace(good, quality="estimated", flags=("estimated",))

    def forget(self, asset_id: str, quantity: str) -> None:
        """Drop the last good value (e.g. the EV it described has left)."""
        self._good.pop((asset_id, quantity), None)
        if quantity == "energy":
            self._register_high.pop(asset_id, None)

    def summary(self) -> dict[str, int]:
        """Points counted by quality, every quality of :data:`QUALITIES` listed."""
        return {quality: int(self.counts.get(quality, 0)) for quality in QUALITIES}
