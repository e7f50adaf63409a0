"""The device interfaces protocol endpoints wrap, and small reference devices.

A SunSpec server (or any other endpoint) talks to a battery or PV inverter only through
:class:`BatteryDevice` / :class:`PvDevice`. The simulator's assets implement them; the
:class:`SimpleBattery` and :class:`SimplePv` here are self-contained reference implementations
(state plus plain physics, advanced with ``advance(dt_s)``) for tests and for serving a twin on
its own.

Sign convention: load convention at the site bus, ``p_kw > 0`` draws from the grid (battery
charging), ``p_kw < 0`` injects (battery discharging, PV producing).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from qubit_sim.errors import QubitSimError
from qubit_sim.units import SECONDS_PER_HOUR

__all__ = ["BatteryDevice", "DeviceParameterError", "PvDevice", "SimpleBattery", "SimplePv"]


class DeviceParameterError(QubitSimError, ValueError):
    """A reference device was given an impossible parameter."""


@runtime_checkable
class BatteryDevice(Protocol):
    """A stationary battery as seen by a protocol endpoint."""

    @property
    def soc(self) -> float:
        """State of charge [0..1]."""
        ...

    @property
    def p_kw(self) -> float:
        """Power at the grid connection [kW], + charging, - discharging."""
        ...

    @property
    def capacity_kwh(self) -> float:
        """Usable energy capacity [kWh]."""
        ...

    @property
    def p_charge_max_kw(self) -> float:
        """Maximum charging power [kW] (positive)."""
        ...

    @property
    def p_discharge_max_kw(self) -> float:
        """Maximum discharging power [kW] (positive)."""
        ...

    @property
    def soc_min(self) -> float:
        """Lowest allowed state of charge [0..1]."""
        ...

    @property
    def soc_max(self) -> float:
        """Highest allowed state of charge [0..1]."""
        ...

    @property
    def voltage_v(self) -> float:
        """AC line-to-neutral voltage at the terminals [V]."""
        ...

    @property
    def frequency_hz(self) -> float:
        """Grid frequency [Hz]."""
        ...

    @property
    def e_charged_kwh(self) -> float:
        """Energy drawn from the grid since commissioning [kWh]."""
        ...

    @property
    def e_discharged_kwh(self) -> float:
        """Energy delivered to the grid since commissioning [kWh]."""
        ...

    @property
    def faulted(self) -> bool:
        """True while the battery is in a fault state (it then holds 0 kW)."""
        ...

    @property
    def enabled(self) -> bool:
        """False after ``set_enabled(False)``: the battery is disconnected and holds 0 kW."""
        ...

    def set_power_setpoint_kw(self, p_kw: float | None) -> None:
        """Command power [kW] (load convention); ``None`` releases to the local default."""
        ...

    def set_enabled(self, enabled: bool) -> None:
        """Connect (``True``) or disconnect (``False``) the battery."""
        ...


@runtime_checkable
class PvDevice(Protocol):
    """A PV plant behind one inverter as seen by a protocol endpoint."""

    @property
    def p_kw(self) -> float:
        """Power at the grid connection [kW], <= 0 (injection)."""
        ...

    @property
    def p_available_kw(self) -> float:
        """Power the plant could deliver without curtailment [kW], >= 0."""
        ...

    @property
    def kwp(self) -> float:
        """DC peak power of the modules [kWp]."""
        ...

    @property
    def inverter_kw(self) -> float:
        """AC rating of the inverter [kW]."""
        ...

    @property
    def voltage_v(self) -> float:
        """AC line-to-neutral voltage at the terminals [V]."""
        ...

    @property
    def e_produced_kwh(self) -> float:
        """Energy delivered since commissioning [kWh]."""
        ...

    @property
    def faulted(self) -> bool:
        """True while the inverter is in a fault state (it then produces nothing)."""
        ...

    @property
    def enabled(self) -> bool:
        """False after ``set_enabled(False)``: the inverter is disconnected."""
        ...

    def set_curtailment_pct(self, pct: float | None) -> None:
        """Cap output at ``pct`` [%] of the inverter rating (``None`` removes the cap)."""
        ...

    def set_enabled(self, enabled: bool) -> None:
        """Connect (``True``) or disconnect (``False``) the inverter."""
        ...


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise DeviceParameterError(f"{name} = {value} must be a fraction in 0..1")


class SimpleBattery:
    """A battery with power limits, one-way efficiencies and a state-of-charge window.

    Args:
        capacity_kwh: Usable capacity [kWh].
        p_charge_max_kw: Charging limit [kW].
        p_discharge_max_kw: Discharging limit [kW].
        soc: Initial state of charge [0..1].
        soc_min: Lowest state of charge [0..1].
        soc_max: Highest state of charge [0..1].
        eta_charge: Charging efficiency, grid -> cells [0..1].
        eta_discharge: Discharging efficiency, cells -> grid [0..1].
        voltage_v: AC line-to-neutral voltage [V].
        frequency_hz: Grid frequency [Hz].
        default_p_kw: Power held when no setpoint is commanded [kW].
    """

    def __init__(
        self,
        capacity_kwh: float = 100.0,
        p_charge_max_kw: float = 50.0,
        p_discharge_max_kw: float = 50.0,
        soc: float = 0.5,
        soc_min: float = 0.05,
        soc_max: float = 0.95,
        eta_charge: float = 0.95,
        eta_discharge: float = 0.95,
        voltage_v: float = 230.0,
        frequency_hz: float = 50.0,
        default_p_kw: float = 0.0,
    ) -> None:
        if capacity_kwh <= 0 or p_charge_max_kw < 0 or p_discharge_max_kw < 0:
            raise DeviceParameterError(
                f"capacity {capacity_kwh} kWh must be > 0 and power limits "
                f"({p_charge_max_kw}, {p_discharge_max_kw}) kW >= 0"
            )
        for name, value in (
            ("soc", soc),
            ("soc_min", soc_min),
            ("soc_max", soc_max),
            ("eta_charge", eta_charge),
            ("eta_discharge", eta_discharge),
        ):
            _check_fraction(name, value)
        if not soc_min <= soc_max:
            raise DeviceParameterError(f"soc_min {soc_min} must not exceed soc_max {soc_max}")
        self.capacity_kwh = capacity_kwh
        self.p_charge_max_kw = p_charge_max_kw
        self.p_discharge_max_kw = p_discharge_max_kw
        self.soc = soc
        self.soc_min = soc_min
        self.soc_max = soc_max
        self.eta_charge = eta_charge
        self.eta_discharge = eta_discharge
        self.voltage_v = voltage_v
        self.frequency_hz = frequency_hz
        self.default_p_kw = default_p_kw
        self.e_charged_kwh = 0.0
        self.e_discharged_kwh = 0.0
        self.faulted = False
        self.enabled = True
        self.setpoint_kw: float | None = None

    def set_power_setpoint_kw(self, p_kw: float | None) -> None:
        """Command power [kW] (+ charge); ``None`` returns to ``default_p_kw``."""
        self.setpoint_kw = None if p_kw is None else float(p_kw)

    def set_enabled(self, enabled: bool) -> None:
        """Connect or disconnect the battery."""
        self.enabled = bool(enabled)

    def set_fault(self, faulted: bool) -> None:
        """Enter or clear a fault state."""
        self.faulted = bool(faulted)

    @property
    def p_kw(self) -> float:
        """Power now [kW]: the command clipped to the ratings and the state-of-charge window."""
        if self.faulted or not self.enabled:
            return 0.0
        target = self.default_p_kw if self.setpoint_kw is None else self.setpoint_kw
        if target > 0:
            return min(target, self.p_charge_max_kw) if self.soc < self.soc_max else 0.0
        return max(target, -self.p_discharge_max_kw) if self.soc > self.soc_min else 0.0

    def advance(self, dt_s: float) -> float:
        """Run ``dt_s`` seconds at the current power; returns the mean power [kW]."""
        if dt_s <= 0:
            return 0.0
        hours = dt_s / SECONDS_PER_HOUR
        p_kw = self.p_kw
        if p_kw > 0:
            headroom_kwh = (self.soc_max - self.soc) * self.capacity_kwh
            p_kw = min(p_kw, max(headroom_kwh, 0.0) / (self.eta_charge * hours))
            self.soc += p_kw * hours * self.eta_charge / self.capacity_kwh
            self.e_charged_kwh += p_kw * hours
        elif p_kw < 0:
            reserve_kwh = (self.soc - self.soc_min) * self.capacity_kwh
            p_kw = max(p_kw, -max(reserve_kwh, 0.0) * self.eta_discharge / hours)
            self.soc += p_kw * hours / (self.eta_discharge * self.capacity_kwh)
            self.e_discharged_kwh += -p_kw * hours
        self.soc = min(max(self.soc, 0.0), 1.0)
        return p_kw


class SimplePv:
    """A PV plant whose available power is set from outside (irradiance model, profile, test).

    Args:
        kwp: Module peak power [kWp].
        inverter_kw: Inverter AC rating [kW].
        available_kw: Initial available power [kW].
        voltage_v: AC line-to-neutral voltage [V].
        frequency_hz: Grid frequency [Hz].
        phases: 1 or 3.
    """

    def __init__(
        self,
        kwp: float = 30.0,
        inverter_kw: float = 25.0,
        available_kw: float = 0.0,
        voltage_v: float = 230.0,
        frequency_hz: float = 50.0,
        phases: int = 3,
    ) -> None:
        if kwp <= 0 or inverter_kw <= 0:
            raise DeviceParameterError(f"kwp {kwp} and inverter_kw {inverter_kw} must be > 0")
        if phases not in (1, 3):
            raise DeviceParameterError(f"phases = {phases}; a PV inverter here has 1 or 3 phases")
        self.kwp = kwp
        self.inverter_kw = inverter_kw
        self.voltage_v = voltage_v
        self.frequency_hz = frequency_hz
        self.phases = phases
        self.e_produced_kwh = 0.0
        self.faulted = False
        self.enabled = True
        self.curtailment_pct: float | None = None
        self._available_kw = 0.0
        self.set_available_kw(available_kw)

    def set_available_kw(self, available_kw: float) -> None:
        """Set the DC power the modules deliver now [kW] (clipped to 0..kwp)."""
        self._available_kw = min(max(float(available_kw), 0.0), self.kwp)

    def set_curtailment_pct(self, pct: float | None) -> None:
        """Cap output at ``pct`` [%] of ``inverter_kw``; ``None`` removes the cap."""
        if pct is not None and not 0.0 <= pct <= 100.0:
            raise DeviceParameterError(f"curtailment {pct} % must be within 0..100")
        self.curtailment_pct = None if pct is None else float(pct)

    def set_enabled(self, enabled: bool) -> None:
        """Connect or disconnect the inverter."""
        self.enabled = bool(enabled)

    def set_fault(self, faulted: bool) -> None:
        """Enter or clear a fault state."""
        self.faulted = bool(faulted)

    @property
    def p_available_kw(self) -> float:
        """Output without curtailment [kW]: available DC power clipped by the inverter."""
        return min(self._available_kw, self.inverter_kw)

    @property
    def p_kw(self) -> float:
        """Power now [kW], <= 0."""
        if self.faulted or not self.enabled:
            return 0.0
        cap = self.inverter_kw
        if self.curtailment_pct is not None:
            cap = self.inverter_kw * self.curtailment_pct / 100.0
        return -min(self.p_available_kw, cap)

    def advance(self, dt_s: float) -> float:
        """Run ``dt_s`` seconds at the current power; returns that power [kW]."""
        p_kw = self.p_kw
        if dt_s > 0:
            self.e_produced_kwh += -p_kw * dt_s / SECONDS_PER_HOUR
        return p_kw
