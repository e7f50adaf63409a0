"""Device views over the simulator's struct-of-arrays assets.

Protocol endpoints talk to one device at a time (:class:`ChargerDevice`, :class:`BatteryDevice`,
:class:`PvDevice`); the simulator keeps every charger, battery and PV plant in numpy arrays. The
views here give one element of those arrays the device interface, and keep the per-device state
the protocols add (limits, availability, transactions) in arrays of :class:`SiteDevices` too:

* ``SiteDevices.charger_limit_kw``, ``battery_setpoint_kw`` and ``pv_limit_kw`` are the limits
  the devices hold, written only through the views' commands. The physics step reads exactly
  these arrays, in every mode, so a setpoint acts on the physics only once a link delivered it.
* Readings come straight from the assets' state (``ChargerFleet``, ``BatteryBank``, the PV
  availability series) at the simulated instant ``now_s()``.

Sign convention: load convention at the site bus (a charging EV or battery draws ``p_kw > 0``,
PV and a discharging battery inject ``p_kw < 0``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from qubit_sim.assets import BatteryBank, ChargerFleet
from qubit_sim.errors import QubitSimError
from qubit_sim.twins.charger_device import ConnectorStatus

__all__ = ["BankBattery", "FleetCharger", "PlantPv", "SiteDevices"]

_NOMINAL_HZ = 50.0
_BATTERY_VOLTAGE_V = 230.0


class SiteDevices:
    """The device-held state of a site and one view per device.

    Args:
        fleet: The chargers with their EVs.
        bank: The batteries.
        pv_available_kw: Available PV power per step and plant [kW] (steps x plants).
        step_s: Physics step [s].
        now_s: Current simulated time [s].
        charger_phases: Phases per charger (1 or 3).
        charger_voltage_v: Nominal phase-to-neutral voltage per charger [V].
        pv_kwp: Module peak power per plant [kWp].
        pv_inverter_kw: Inverter AC rating per plant [kW].
        charger_versions: OCPP version per charger (``"1.6"`` or ``"2.0.1"``).
    """

    def __init__(
        self,
        fleet: ChargerFleet,
        bank: BatteryBank,
        pv_available_kw: np.ndarray,
        step_s: int,
        now_s: Callable[[], int],
        *,
        charger_phases: Sequence[int],
        charger_voltage_v: Sequence[float],
        pv_kwp: Sequence[float],
        pv_inverter_kw: Sequence[float],
        charger_versions: Sequence[str] | None = None,
    ) -> None:
        n, nb, npv = fleet.n, bank.n, pv_available_kw.shape[1]
        for name, values, size in (
            ("charger_phases", charger_phases, n),
            ("charger_voltage_v", charger_voltage_v, n),
            ("pv_kwp", pv_kwp, npv),
            ("pv_inverter_kw", pv_inverter_kw, npv),
        ):
            if len(values) != size:
                raise QubitSimError(f"{name} has {len(values)} entries; the site has {size}")
        self.fleet = fleet
        self.bank = bank
        self.pv_available_kw = pv_available_kw
        self.step_s = step_s
        self.now_s = now_s
        #: Voltage at the site bus from the last power flow [p.u.]; 1.0 without one.
        self.voltage_pu = 1.0
        self.charger_phases = np.asarray(charger_phases, dtype=np.int64)
        self.charger_voltage_v = np.asarray(charger_voltage_v, dtype=float)
        self.charger_versions = tuple(charger_versions or ("1.6",) * n)
        # Held limits: what the physics applies (NaN: no limit).
        self.charger_limit_kw = np.full(n, np.nan)
        self.charger_requested_kw = np.full(n, np.nan)
        self.charger_available = np.ones(n, dtype=bool)
        # Session index whose transaction runs / ran / was stopped while plugged (-1: none).
        self.charger_tx_session = np.full(n, -1, dtype=np.int64)
        self.charger_used_session = np.full(n, -1, dtype=np.int64)
        self.charger_halted_session = np.full(n, -1, dtype=np.int64)
        self.battery_setpoint_kw = np.zeros(nb)
        self.battery_requested_kw = np.zeros(nb)
        self.battery_enabled = np.ones(nb, dtype=bool)
        self.pv_kwp = np.asarray(pv_kwp, dtype=float)
        self.pv_inverter_kw = np.asarray(pv_inverter_kw, dtype=float)
        self.pv_limit_kw = np.full(npv, np.nan)
        self.pv_curtailment_pct = np.full(npv, np.nan)
        self.pv_enabled = np.ones(npv, dtype=bool)
        self.pv_e_produced_kwh = np.zeros(npv)
        # Injected faults: a faulted device delivers no power; a frozen meter reports the
        # readings held in the ``*_frozen`` arrays (NaN: live) while the physics goes on.
        self.charger_faulted = np.zeros(n, dtype=bool)
        self.battery_faulted = np.zeros(nb, dtype=bool)
        self.pv_faulted = np.zeros(npv, dtype=bool)
        self.charger_frozen = np.full((n, 2), np.nan)  # p_kw, e_register_wh
        self.battery_frozen = np.full((nb, 3), np.nan)  # p_kw, e_charged_kwh, e_discharged_kwh
        self.pv_frozen = np.full((npv, 2), np.nan)  # p_kw, e_produced_kwh
        self.chargers = [FleetCharger(self, i) for i in range(n)]
        self.batteries = [BankBattery(self, j) for j in range(nb)]
        self.pv = [PlantPv(self, j) for j in range(npv)]

    def step_index(self) -> int:
        """Index of the physics step at ``now_s()`` (the last one after the end)."""
        last = max(len(self.pv_available_kw) - 1, 0)
        return min(self.now_s() // self.step_s, last)

    # -- chargers ---------------------------------------------------------------------------

    def _charger_blocked(self, i: int) -> bool:
        session = self.fleet.session[i]
        halted = session >= 0 and self.charger_halted_session[i] == session
        return bool(halted or not self.charger_available[i] or self.charger_faulted[i])

    def _update_charger(self, i: int) -> None:
        blocked = self._charger_blocked(i)
        self.charger_limit_kw[i] = 0.0 if blocked else self.charger_requested_kw[i]

    def update_chargers(self, mask: np.ndarray) -> None:
        """Re-derive the held caps of the chargers in ``mask`` (bool, one per charger) from
        their requested caps, as :meth:`FleetCharger.set_limit_kw` does for one charger."""
        blocked = self.charger_faulted | ~self.charger_available
        halted_session = self.charger_halted_session
        if np.maximum.reduce(halted_session) >= 0:
            session = self.fleet.session
            blocked |= (session >= 0) & (halted_session == session)
        held = np.where(blocked, 0.0, self.charger_requested_kw)
        np.copyto(self.charger_limit_kw, held, where=mask)

    def update_batteries(self, idx: np.ndarray | int) -> None:
        """Re-derive the held setpoints of batteries ``idx`` from their requested setpoints,
        as :meth:`BankBattery.set_power_setpoint_kw` does for one battery."""
        if isinstance(idx, int):
            self.batteries[idx]._update()
            return
        live = self.battery_enabled[idx] & ~self.battery_faulted[idx]
        self.battery_setpoint_kw[idx] = np.where(live, self.battery_requested_kw[idx], 0.0)

    def refresh(self) -> None:
        """Re-derive held charger limits after plug events (a new EV clears a halt)."""
        session = self.fleet.session
        halted = (session >= 0) & (self.charger_halted_session == session)
        blocked = halted | ~self.charger_available | self.charger_faulted
        self.charger_limit_kw[:] = np.where(blocked, 0.0, self.charger_requested_kw)

    def curtailing(self) -> bool:
        """Whether any PV plant holds a cap (the physics then clips each plant)."""
        limit_kw = self.pv_limit_kw
        if len(limit_kw) == 1:  # the common single plant, without a reduction
            return not math.isnan(limit_kw[0])
        # fmin ignores NaN: its reduction is NaN only when every plant is uncapped.
        return bool(len(limit_kw)) and not math.isnan(np.fmin.reduce(limit_kw))

    def set_faulted(self, kind: str, index: int, faulted: bool) -> None:
        """Fault or clear device ``index`` of ``kind`` (``charger``, ``battery`` or ``pv``).

        A faulted device delivers 0 kW and reports its fault (OCPP ``Faulted``, SunSpec alarm
        bits); cleared, it returns to the limit or setpoint it was last given.
        """
        if kind == "charger":
            self.charger_faulted[index] = faulted
            self._update_charger(index)
        elif kind == "battery":
            self.battery_faulted[index] = faulted
            self.batteries[index]._update()
        elif kind == "pv":
            self.pv_faulted[index] = faulted
            self.pv[index]._update()
        else:
            raise QubitSimError(f"device kind {kind!r} must be 'charger', 'battery' or 'pv'")

    def freeze_meter(self, kind: str, index: int, frozen: bool) -> None:
        """Freeze (or thaw) the meter readings of device ``index`` of ``kind``.

        While frozen, the device reports the power and energy registers of the instant the
        freeze began; the physics and the true registers go on, so the readings jump to the
        true values when the meter thaws (no energy is lost).
        """
        if kind == "charger":
            charger = self.chargers[index]
            self.charger_frozen[index] = np.nan
            if frozen:
                self.charger_frozen[index] = (charger.p_kw(1), charger.e_register_wh(1))
        elif kind == "battery":
            battery = self.batteries[index]
            self.battery_frozen[index] = np.nan
            if frozen:
                self.battery_frozen[index] = (
                    battery.p_kw,
                    battery.e_charged_kwh,
                    battery.e_discharged_kwh,
                )
        elif kind == "pv":
            plant = self.pv[index]
            self.pv_frozen[index] = np.nan
            if frozen:
                self.pv_frozen[index] = (plant.p_kw, plant.e_produced_kwh)
        else:
            raise QubitSimError(f"device kind {kind!r} must be 'charger', 'battery' or 'pv'")

    def record_step(self, k: int, curtailing: bool) -> None:
        """Count the PV energy of step ``k`` into the plants' registers."""
        if not len(self.pv_limit_kw):
            return
        available = self.pv_available_kw[k]
        produced = (
            np.fmin(available, np.maximum(self.pv_limit_kw, 0.0)) if curtailing else available
        )
        self.pv_e_produced_kwh += produced * (self.step_s / 3600.0)


class FleetCharger:
    """Charger ``i`` of the fleet as a one-connector :class:`ChargerDevice`.

    The physics never needs a transaction to deliver energy (a ``fast`` run has none). A
    transaction that ends while the EV stays plugged (stopped, or ended by making the charger
    unavailable) halts the charger, so that the EV does not go on charging by itself with no
    transaction; the halt lasts until a new transaction starts for that EV (a remote start acts
    as a local authorisation, OCPP 1.6 §5.11 / 2.0.1 F01) or the next EV plugs in.
    """

    def __init__(self, devices: SiteDevices, i: int) -> None:
        self._d = devices
        self._fleet = devices.fleet
        self.i = i

    def _check(self, connector: int) -> None:
        if connector != 1:
            raise QubitSimError(
                f"charger {self._fleet.ids[self.i]} has only connector 1, not {connector}"
            )

    def _in_tx(self) -> bool:
        session = self._fleet.session[self.i]
        return bool(session >= 0 and self._d.charger_tx_session[self.i] == session)

    @property
    def n_connectors(self) -> int:
        """One connector per fleet charger."""
        return 1

    def status(self, connector: int) -> ConnectorStatus:
        """OCPP connector status from availability, the plugged EV, the transaction and limit."""
        self._check(connector)
        i, fleet, d = self.i, self._fleet, self._d
        if d.charger_faulted[i]:
            return ConnectorStatus.FAULTED
        if not d.charger_available[i]:
            return ConnectorStatus.UNAVAILABLE
        session = fleet.session[i]
        if session < 0:
            return ConnectorStatus.AVAILABLE
        if d.charger_tx_session[i] == session:
            if d.charger_limit_kw[i] <= 0.0:
                return ConnectorStatus.SUSPENDED_EVSE
            if fleet.e_needed_kwh[i] <= 0.0 or fleet.ev_max_kw[i] <= 0.0:
                return ConnectorStatus.SUSPENDED_EV
            return ConnectorStatus.CHARGING
        if d.charger_used_session[i] == session:
            return ConnectorStatus.FINISHING
        return ConnectorStatus.PREPARING

    def ev_connected(self, connector: int) -> bool:
        """Whether an EV is plugged in."""
        self._check(connector)
        return bool(self._fleet.connected[self.i])

    def p_kw(self, connector: int) -> float:
        """Grid-side power of the last physics step [kW]."""
        self._check(connector)
        frozen = self._d.charger_frozen[self.i, 0]
        return float(self._fleet.p_grid_kw[self.i]) if math.isnan(frozen) else float(frozen)

    def e_register_wh(self, connector: int) -> float:
        """Grid-side energy register [Wh]."""
        self._check(connector)
        frozen = self._d.charger_frozen[self.i, 1]
        if math.isnan(frozen):
            return float(self._fleet.e_register_kwh[self.i]) * 1000.0
        return float(frozen)

    def _reread_meter(self) -> None:
        # A transaction boundary reads the meter afresh (the billing reading must be true);
        # a frozen meter then stays frozen at that reading.
        if not math.isnan(self._d.charger_frozen[self.i, 1]):
            self._d.charger_frozen[self.i, 1] = float(self._fleet.e_register_kwh[self.i]) * 1000.0

    def current_a(self, connector: int) -> tuple[float, float, float]:
        """Current per phase [A], coherent with power and voltage (``P = sum(V_i * I_i)``)."""
        volts = self.voltage_v(connector)[0]
        phases = int(self._d.charger_phases[self.i])
        amps = self.p_kw(connector) * 1000.0 / (phases * volts) if volts > 0 else 0.0
        values = [amps if phase < phases else 0.0 for phase in range(3)]
        return (values[0], values[1], values[2])

    def voltage_v(self, connector: int) -> tuple[float, float, float]:
        """Phase-to-neutral voltage [V]: nominal times the site-bus voltage of the power flow."""
        self._check(connector)
        pu = self._d.voltage_pu
        volts = float(self._d.charger_voltage_v[self.i]) * (pu if math.isfinite(pu) else 1.0)
        return (volts, volts, volts)

    def ev_soc(self, connector: int) -> float | None:
        """SOC of the plugged EV [fraction], ``None`` without one."""
        self._check(connector)
        return float(self._fleet.soc[self.i]) if self._fleet.connected[self.i] else None

    def max_power_kw(self, connector: int) -> float:
        """Rated grid-side power [kW]."""
        self._check(connector)
        return float(self._fleet.rated_kw[self.i])

    def phases(self, connector: int) -> int:
        """Phases of the charger."""
        self._check(connector)
        return int(self._d.charger_phases[self.i])

    def set_limit_kw(self, connector: int, limit_kw: float | None) -> None:
        """Hold a grid-side power cap [kW] (``None``: none); the physics applies it."""
        self._check(connector)
        if limit_kw is not None and not limit_kw >= 0.0:
            raise QubitSimError(f"power limit {limit_kw!r} kW must be >= 0 (or None for no limit)")
        self._d.charger_requested_kw[self.i] = np.nan if limit_kw is None else float(limit_kw)
        self._d._update_charger(self.i)

    def limit_kw(self, connector: int) -> float | None:
        """The cap the charger holds now [kW] (``None``: none)."""
        self._check(connector)
        value = float(self._d.charger_limit_kw[self.i])
        return None if math.isnan(value) else value

    def start_transaction(self, connector: int) -> bool:
        """Mark a transaction for the plugged EV; ``False`` without an EV, if unavailable,
        faulted or already running. A halt left by an earlier transaction of the same EV ends:
        the EV charges again under the held limit."""
        self._check(connector)
        d, i = self._d, self.i
        session = self._fleet.session[i]
        if session < 0 or not d.charger_available[i] or d.charger_faulted[i] or self._in_tx():
            return False
        d.charger_tx_session[i] = session
        d.charger_used_session[i] = session
        if d.charger_halted_session[i] == session:
            d.charger_halted_session[i] = -1
            d._update_charger(i)
        self._reread_meter()
        return True

    def stop_transaction(self, connector: int) -> bool:
        """End the transaction; an EV still plugged in then gets no more energy until a new
        transaction starts for it."""
        self._check(connector)
        d, i = self._d, self.i
        was = int(d.charger_tx_session[i])
        if was < 0:
            return False
        d.charger_tx_session[i] = -1
        if self._fleet.session[i] == was:
            d.charger_halted_session[i] = was
            d._update_charger(i)
        self._reread_meter()
        return True

    def set_available(self, connector: int, available: bool) -> None:
        """(Un)make available; an unavailable charger delivers nothing and ends its transaction
        (as :meth:`stop_transaction` does, so it does not resume when made available again)."""
        self._check(connector)
        if not available:
            self.stop_transaction(connector)
        self._d.charger_available[self.i] = bool(available)
        self._d._update_charger(self.i)


class _AcTerminal:
    """Voltage and frequency at a DER's AC terminal, as its SunSpec model reports them."""

    _d: SiteDevices

    @property
    def voltage_v(self) -> float:
        """AC line-to-neutral voltage [V]: nominal times the site-bus voltage."""
        pu = self._d.voltage_pu
        return _BATTERY_VOLTAGE_V * (pu if math.isfinite(pu) else 1.0)

    @property
    def frequency_hz(self) -> float:
        """Grid frequency [Hz] (nominal)."""
        return _NOMINAL_HZ


class BankBattery(_AcTerminal):
    """Battery ``j`` of the bank as a :class:`BatteryDevice`."""

    def __init__(self, devices: SiteDevices, j: int) -> None:
        self._d = devices
        self._bank = devices.bank
        self.j = j

    @property
    def soc(self) -> float:
        """State of charge [0..1]."""
        return float(self._bank.soc[self.j])

    @property
    def p_kw(self) -> float:
        """Power of the last physics step [kW], + charging."""
        frozen = self._d.battery_frozen[self.j, 0]
        return float(self._bank.p_kw[self.j]) if math.isnan(frozen) else float(frozen)

    @property
    def capacity_kwh(self) -> float:
        """Usable capacity [kWh]."""
        return float(self._bank.capacity_kwh[self.j])

    @property
    def p_charge_max_kw(self) -> float:
        """Charging rating [kW]."""
        return float(self._bank.p_charge_max_kw[self.j])

    @property
    def p_discharge_max_kw(self) -> float:
        """Discharging rating [kW]."""
        return float(self._bank.p_discharge_max_kw[self.j])

    @property
    def soc_min(self) -> float:
        """Lowest allowed SOC [0..1]."""
        return float(self._bank.soc_min[self.j])

    @property
    def soc_max(self) -> float:
        """Highest allowed SOC [0..1]."""
        return float(self._bank.soc_max[self.j])

    @property
    def e_charged_kwh(self) -> float:
        """AC energy charged so far [kWh]."""
        frozen = self._d.battery_frozen[self.j, 1]
        return float(self._bank.e_charged_kwh[self.j]) if math.isnan(frozen) else float(frozen)

    @property
    def e_discharged_kwh(self) -> float:
        """AC energy discharged so far [kWh]."""
        frozen = self._d.battery_frozen[self.j, 2]
        return float(self._bank.e_discharged_kwh[self.j]) if math.isnan(frozen) else float(frozen)

    @property
    def faulted(self) -> bool:
        """Whether an injected device fault holds the battery at 0 kW."""
        return bool(self._d.battery_faulted[self.j])

    @property
    def enabled(self) -> bool:
        """Whether the battery is connected."""
        return bool(self._d.battery_enabled[self.j])

    @property
    def setpoint_kw(self) -> float:
        """Setpoint the battery holds now [kW] (0 when disconnected)."""
        return float(self._d.battery_setpoint_kw[self.j])

    def set_power_setpoint_kw(self, p_kw: float | None) -> None:
        """Hold a power setpoint [kW, + charge]; ``None`` returns to the local default, 0 kW."""
        if p_kw is not None and not math.isfinite(p_kw):
            raise QubitSimError(f"battery setpoint {p_kw!r} kW must be a finite number or None")
        d, j = self._d, self.j
        d.battery_requested_kw[j] = 0.0 if p_kw is None else float(p_kw)
        self._update()

    def set_enabled(self, enabled: bool) -> None:
        """Connect or disconnect; a disconnected battery holds 0 kW."""
        self._d.battery_enabled[self.j] = bool(enabled)
        self._update()

    def _update(self) -> None:
        d, j = self._d, self.j
        live = d.battery_enabled[j] and not d.battery_faulted[j]
        d.battery_setpoint_kw[j] = d.battery_requested_kw[j] if live else 0.0


class PlantPv(_AcTerminal):
    """PV plant ``j`` as a :class:`PvDevice`."""

    def __init__(self, devices: SiteDevices, j: int) -> None:
        self._d = devices
        self.j = j

    @property
    def p_available_kw(self) -> float:
        """Power available this step without curtailment [kW], >= 0."""
        return float(self._d.pv_available_kw[self._d.step_index(), self.j])

    @property
    def p_kw(self) -> float:
        """Power this step [kW], <= 0: the available power under the held cap."""
        frozen = self._d.pv_frozen[self.j, 0]
        if not math.isnan(frozen):
            return float(frozen)
        available = self.p_available_kw
        limit = float(self._d.pv_limit_kw[self.j])
        return -(available if math.isnan(limit) else min(available, max(limit, 0.0)))

    @property
    def kwp(self) -> float:
        """Module peak power [kWp]."""
        return float(self._d.pv_kwp[self.j])

    @property
    def inverter_kw(self) -> float:
        """Inverter AC rating [kW]."""
        return float(self._d.pv_inverter_kw[self.j])

    @property
    def e_produced_kwh(self) -> float:
        """Energy produced so far [kWh] (counted by runs that record it per step)."""
        frozen = self._d.pv_frozen[self.j, 1]
        return float(self._d.pv_e_produced_kwh[self.j]) if math.isnan(frozen) else float(frozen)

    @property
    def faulted(self) -> bool:
        """Whether an injected device fault holds the inverter at 0 kW."""
        return bool(self._d.pv_faulted[self.j])

    @property
    def enabled(self) -> bool:
        """Whether the inverter is connected."""
        return bool(self._d.pv_enabled[self.j])

    @property
    def curtailment_pct(self) -> float | None:
        """Cap in percent of the inverter rating, ``None`` without one."""
        value = float(self._d.pv_curtailment_pct[self.j])
        return None if math.isnan(value) else value

    def _update(self) -> None:
        d, j = self._d, self.j
        pct = d.pv_curtailment_pct[j]
        cap = np.nan if math.isnan(pct) else d.pv_inverter_kw[j] * pct / 100.0
        d.pv_limit_kw[j] = cap if d.pv_enabled[j] and not d.pv_faulted[j] else 0.0

    def set_curtailment_pct(self, pct: float | None) -> None:
        """Cap output at ``pct`` [%] of the inverter rating; ``None`` removes the cap."""
        if pct is not None and not 0.0 <= pct <= 100.0:
            raise QubitSimError(f"curtailment {pct} % must be within 0..100 (or None)")
        self._d.pv_curtailment_pct[self.j] = np.nan if pct is None else float(pct)
        self._update()

    def set_enabled(self, enabled: bool) -> None:
        """Connect or disconnect; a disconnected inverter produces nothing."""
        self._d.pv_enabled[self.j] = bool(enabled)
        self._update()
