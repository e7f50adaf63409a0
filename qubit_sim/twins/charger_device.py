"""The charger seen by its OCPP twin: a small protocol, and a plain implementation of it.

:class:`ChargerDevice` is what :class:`~qubit_sim.twins.ocpp_cp.OcppChargePointTwin` wraps. The
simulator's charger fleet implements it over its struct-of-arrays state; :class:`SimpleCharger`
implements it with a few lists and plain physics, for tests and for serving a standalone twin.

Connectors are numbered from 1, as in OCPP. Power follows the load convention at the site bus:
a charging EV draws ``p_kw >= 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from qubit_sim.errors import QubitSimError
from qubit_sim.units import SECONDS_PER_HOUR

__all__ = [
    "ChargerDevice",
    "ConnectorStatus",
    "EvState",
    "SimpleCharger",
]


class ConnectorStatus(StrEnum):
    """Connector states, with their OCPP 1.6 names."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


@runtime_checkable
class ChargerDevice(Protocol):
    """A charger with ``n_connectors`` connectors, as an OCPP charge point sees it.

    Readings reflect the device *now*: ``p_kw`` is the power drawn from this instant on, the
    energy register what was delivered so far. Commands take effect immediately.
    """

    @property
    def n_connectors(self) -> int:
        """Number of connectors (numbered 1..n)."""
        ...

    def status(self, connector: int) -> ConnectorStatus:
        """Connector state."""
        ...

    def ev_connected(self, connector: int) -> bool:
        """Whether an EV is plugged in."""
        ...

    def p_kw(self, connector: int) -> float:
        """Active power drawn [kW], >= 0."""
        ...

    def e_register_wh(self, connector: int) -> float:
        """Energy register [Wh]; never decreases."""
        ...

    def current_a(self, connector: int) -> tuple[float, float, float]:
        """Current per phase L1..L3 [A]."""
        ...

    def voltage_v(self, connector: int) -> tuple[float, float, float]:
        """Phase-to-neutral voltage per phase L1..L3 [V], from the power flow."""
        ...

    def ev_soc(self, connector: int) -> float | None:
        """EV state of charge [fraction 0..1], or ``None`` when unknown."""
        ...

    def max_power_kw(self, connector: int) -> float:
        """Rated power of the connector [kW]."""
        ...

    def phases(self, connector: int) -> int:
        """Number of phases the connector can use (1 or 3)."""
        ...

    def set_limit_kw(self, connector: int, limit_kw: float | None) -> None:
        """Cap the connector's power [kW]; ``None`` removes the cap."""
        ...

    def start_transaction(self, connector: int) -> bool:
        """Begin delivering energy; ``False`` if not possible (no EV, unavailable, faulted)."""
        ...

    def stop_transaction(self, connector: int) -> bool:
        """Stop delivering energy; ``False`` if no transaction was running."""
        ...

    def set_available(self, connector: int, available: bool) -> None:
        """Make the connector (un)available; an unavailable connector delivers nothing."""
        ...


@dataclass
class EvState:
    """The EV plugged into a connector.

    Attributes:
        capacity_kwh: Usable battery capacity [kWh].
        soc: State of charge [fraction 0..1].
        max_power_kw: On-board charger limit [kW].
        target_soc: SOC at which the EV stops drawing [fraction 0..1].
        phases: Phases the on-board charger uses (1 or 3).
        taper_soc: Above this SOC the drawn power tapers linearly to zero at ``target_soc``.
    """

    capacity_kwh: float
    soc: float
    max_power_kw: float = 11.0
    target_soc: float = 1.0
    phases: int = 3
    taper_soc: float = 0.8


@dataclass
class _Connector:
    voltage_v: tuple[float, float, float]
    ev: EvState | None = None
    limit_kw: float | None = None
    in_transaction: bool = False
    used_since_plug: bool = False
    available: bool = True
    faulted: bool = False
    e_register_wh: float = 0.0
    session_start_wh: float = 0.0


class SimpleCharger:
    """A charger with plain physics, advanced explicitly by :meth:`advance`.

    Args:
        n_connectors: Number of connectors.
        max_power_kw: Rated power per connector [kW].
        phases: Phases per connector (1 or 3).
        voltage_v: Initial phase-to-neutral voltage [V]; :meth:`set_voltage` updates it.
        efficiency: Grid-to-battery efficiency of the EV charging [fraction].
    """

    def __init__(
        self,
        n_connectors: int = 1,
        max_power_kw: float = 22.0,
        phases: int = 3,
        voltage_v: float = 230.0,
        efficiency: float = 0.92,
    ) -> None:
        if n_connectors < 1:
            raise QubitSimError(f"a charger needs at least one connector, got {n_connectors}")
        if phases not in (1, 3):
            raise QubitSimError(f"phases must be 1 or 3, got {phases}")
        if not 0.0 < efficiency <= 1.0:
            raise QubitSimError(f"efficiency must be in (0, 1], got {efficiency}")
        self._max_kw = float(max_power_kw)
        self._phases = phases
        self._efficiency = efficiency
        volts = (float(voltage_v),) * 3
        self._conn = [_Connector(voltage_v=volts) for _ in range(n_connectors)]

    # -- helpers -------------------------------------------------------------------------------

    def _c(self, connector: int) -> _Connector:
        if not 1 <= connector <= len(self._conn):
            raise QubitSimError(
                f"connector {connector} does not exist; this charger has connectors "
                f"1..{len(self._conn)}"
            )
        return self._conn[connector - 1]

    def _used_phases(self, c: _Connector) -> int:
        ev_phases = c.ev.phases if c.ev is not None else self._phases
        return max(1, min(self._phases, ev_phases))

    def _ev_demand_kw(self, c: _Connector) -> float:
        ev = c.ev
        if ev is None or ev.soc >= ev.target_soc:
            return 0.0
        if ev.soc <= ev.taper_soc or ev.target_soc <= ev.taper_soc:
            return ev.max_power_kw
        fraction = (ev.target_soc - ev.soc) / (ev.target_soc - ev.taper_soc)
        # A floor keeps the taper from approaching the target only asymptotically.
        return ev.max_power_kw * max(fraction, 0.05)

    # -- ChargerDevice -------------------------------------------------------------------------

    @property
    def n_connectors(self) -> int:
        """Number of connectors."""
        return len(self._conn)

    def status(self, connector: int) -> ConnectorStatus:
        """Connector state, derived from the EV, the transaction and the limit."""
        c = self._c(connector)
        if c.faulted:
            return ConnectorStatus.FAULTED
        if not c.available:
            return ConnectorStatus.UNAVAILABLE
        if c.ev is None:
            return ConnectorStatus.AVAILABLE
        if c.in_transaction:
            if c.limit_kw is not None and c.limit_kw <= 0.0:
                return ConnectorStatus.SUSPENDED_EVSE
            if self._ev_demand_kw(c) <= 0.0:
                return ConnectorStatus.SUSPENDED_EV
            return ConnectorStatus.CHARGING
        return ConnectorStatus.FINISHING if c.used_since_plug else ConnectorStatus.PREPARING

    def ev_connected(self, connector: int) -> bool:
        """Whether an EV is plugged in."""
        return self._c(connector).ev is not None

    def p_kw(self, connector: int) -> float:
        """Power drawn now [kW]: the least of rating, limit and EV demand."""
        c = self._c(connector)
        if c.faulted or not c.available or not c.in_transaction or c.ev is None:
            return 0.0
        p_kw = min(self._max_kw, self._ev_demand_kw(c))
        if c.limit_kw is not None:
            p_kw = min(p_kw, c.limit_kw)
        return max(p_kw, 0.0)

    def e_register_wh(self, connector: int) -> float:
        """Energy register [Wh]."""
        return self._c(connector).e_register_wh

    def current_a(self, connector: int) -> tuple[float, float, float]:
        """Current per phase [A], so that ``sum(V_i * I_i) == p_kw * 1000``."""
        c = self._c(connector)
        p_w = self.p_kw(connector) * 1000.0
        n_used = self._used_phases(c)
        amps = [0.0, 0.0, 0.0]
        if p_w > 0.0:
            for i in range(n_used):
                amps[i] = p_w / (n_used * c.voltage_v[i])
        return (amps[0], amps[1], amps[2])

    def voltage_v(self, connector: int) -> tuple[float, float, float]:
        """Phase-to-neutral voltage per phase [V]."""
        return self._c(connector).voltage_v

    def ev_soc(self, connector: int) -> float | None:
        """EV state of charge [fraction], ``None`` without an EV."""
        ev = self._c(connector).ev
        return None if ev is None else ev.soc

    def max_power_kw(self, connector: int) -> float:
        """Rated power [kW]."""
        self._c(connector)
        return self._max_kw

    def phases(self, connector: int) -> int:
        """Phases of the connector."""
        self._c(connector)
        return self._phases

    def set_limit_kw(self, connector: int, limit_kw: float | None) -> None:
        """Cap the power [kW]; ``None`` removes the cap."""
        if limit_kw is not None and not limit_kw >= 0.0:
            raise QubitSimError(f"power limit {limit_kw!r} kW must be >= 0 (or None for no limit)")
        self._c(connector).limit_kw = None if limit_kw is None else float(limit_kw)

    def limit_kw(self, connector: int) -> float | None:
        """The cap currently applied [kW]."""
        return self._c(connector).limit_kw

    def start_transaction(self, connector: int) -> bool:
        """Start delivering energy to the plugged-in EV."""
        c = self._c(connector)
        if c.ev is None or c.faulted or not c.available or c.in_transaction:
            return False
        c.in_transaction = True
        c.used_since_plug = True
        c.session_start_wh = c.e_register_wh
        return True

    def stop_transaction(self, connector: int) -> bool:
        """Stop delivering energy."""
        c = self._c(connector)
        if not c.in_transaction:
            return False
        c.in_transaction = False
        return True

    def set_available(self, connector: int, available: bool) -> None:
        """(Un)make available; making a connector unavailable ends its transaction."""
        c = self._c(connector)
        c.available = bool(available)
        if not available:
            c.in_transaction = False

    # -- simulation ----------------------------------------------------------------------------

    def in_transaction(self, connector: int) -> bool:
        """Whether the connector is delivering a session."""
        return self._c(connector).in_transaction

    def session_energy_wh(self, connector: int) -> float:
        """Energy delivered since the last :meth:`start_transaction` [Wh]."""
        c = self._c(connector)
        return c.e_register_wh - c.session_start_wh

    def plug_in(self, connector: int, ev: EvState) -> None:
        """Plug an EV in."""
        c = self._c(connector)
        if c.ev is not None:
            raise QubitSimError(f"connector {connector} already has an EV; unplug it first")
        if not 0.0 <= ev.soc <= 1.0 or ev.capacity_kwh <= 0.0:
            raise QubitSimError(
                f"EV soc {ev.soc} must be in [0, 1] and capacity {ev.capacity_kwh} kWh positive"
            )
        c.ev = ev
        c.used_since_plug = False

    def unplug(self, connector: int) -> EvState | None:
        """Unplug the EV (ending any transaction); returns it."""
        c = self._c(connector)
        ev, c.ev = c.ev, None
        c.in_transaction = False
        c.used_since_plug = False
        return ev

    def set_voltage(self, connector: int, voltage_v: tuple[float, float, float]) -> None:
        """Set the phase-to-neutral voltages [V], e.g. from a power flow."""
        if len(voltage_v) != 3 or min(voltage_v) <= 0.0:
            raise QubitSimError(f"voltage_v must be three positive values [V], got {voltage_v}")
        self._c(connector).voltage_v = (
            float(voltage_v[0]),
            float(voltage_v[1]),
            float(voltage_v[2]),
        )

    def set_fault(self, connector: int, faulted: bool) -> None:
        """Raise or clear a fault; a faulted connector delivers nothing."""
        self._c(connector).faulted = bool(faulted)

    def advance(self, dt_s: float) -> None:
        """Advance ``dt_s`` [s] at the present power of each connector."""
        if dt_s < 0:
            raise QubitSimError(f"cannot advance by a negative time {dt_s} s")
        for index, c in enumerate(self._conn, start=1):
            p_kw = self.p_kw(index)
            if p_kw <= 0.0 or c.ev is None:
                continue
            ev = c.ev
            grid_kwh = p_kw * dt_s / SECONDS_PER_HOUR
            room_kwh = max(ev.target_soc - ev.soc, 0.0) * ev.capacity_kwh / self._efficiency
            grid_kwh = min(grid_kwh, room_kwh)
            c.e_register_wh += grid_kwh * 1000.0
            ev.soc = min(ev.soc + grid_kwh * self._efficiency / ev.capacity_kwh, ev.target_soc)
