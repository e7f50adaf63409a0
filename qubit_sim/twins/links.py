"""In-process links to device twins, and the router that sends only changed setpoints.

A :class:`DirectChargerLink`, :class:`DirectBatteryLink` or :class:`DirectPvLink` calls its device
at once, but rounds every setpoint exactly as the wire would (:mod:`qubit_sim.twins.quantize`): a
``fast`` run and a ``wire`` run (``OcppLink`` through the CSMS, ``ModbusLink`` to a SunSpec
server) hand the devices the same numbers.

:class:`SetpointRouter` turns the controller's arrays into per-device link calls. It sanitises
them (NaN/inf means no limit, charger and PV caps are at least 0, battery setpoints stay within
the ratings the device advertises), quantises them vectorised, and reports only the devices whose
wire value changed since the last call, so a quiet controller causes no traffic at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qubit_sim.twins.charger_device import ChargerDevice
from qubit_sim.twins.der_device import BatteryDevice, PvDevice
from qubit_sim.twins.fleet_devices import SiteDevices
from qubit_sim.twins.quantize import BatteryWire, PvWire, charger_limit_kw, charger_limits_kw

__all__ = [
    "DirectBatteryLink",
    "DirectChargerLink",
    "DirectPvLink",
    "SetpointChanges",
    "SetpointRouter",
]


class DirectChargerLink:
    """In-process link to one charger connector, rounding limits as OCPP does (0.1 W).

    Args:
        device: The charger.
        connector: Connector number.
    """

    def __init__(self, device: ChargerDevice, connector: int = 1) -> None:
        self.device = device
        self.connector = connector

    def set_power_limit(self, p_kw: float | None) -> float | None:
        """Cap the connector's power [kW] (``None``/NaN lifts the cap); returns the cap held."""
        limit = charger_limit_kw(p_kw)
        self.device.set_limit_kw(self.connector, limit)
        return limit

    def start(self) -> bool:
        """Start a transaction for the plugged EV."""
        return self.device.start_transaction(self.connector)

    def stop(self) -> bool:
        """Stop the running transaction."""
        return self.device.stop_transaction(self.connector)

    def set_availability(self, available: bool) -> None:
        """Make the connector operative or inoperative."""
        self.device.set_available(self.connector, available)

    def read(self) -> dict[str, Any]:
        """Status, power [kW], energy register [kWh] and EV SOC of the connector."""
        c = self.connector
        return {
            "status": str(self.device.status(c)),
            "p_kw": self.device.p_kw(c),
            "e_register_kwh": self.device.e_register_wh(c) / 1000.0,
            "ev_soc": self.device.ev_soc(c),
        }


class DirectBatteryLink:
    """In-process link to battery ``j`` of a bank, rounding setpoints as SunSpec ``WSet`` does.

    Args:
        device: The battery.
        wire: Wire parameters of the bank (scale factors, advertised ratings).
        j: Index of the battery in ``wire``.
    """

    def __init__(self, device: BatteryDevice, wire: BatteryWire, j: int) -> None:
        self.device = device
        self.wire = wire
        self.j = j

    def set_power_limit(self, kw: float | None) -> float | None:
        """Power setpoint [kW, + charge]; ``None`` releases it. Returns the setpoint applied."""
        applied = None if kw is None else self.wire.setpoint_kw(self.j, kw)
        self.device.set_power_setpoint_kw(applied)
        return applied

    def start(self) -> None:
        """Connect the battery."""
        self.device.set_enabled(True)

    def stop(self) -> None:
        """Disconnect the battery."""
        self.device.set_enabled(False)

    def set_availability(self, available: bool) -> None:
        """Connect or disconnect the battery."""
        self.device.set_enabled(available)

    def read(self) -> dict[str, Any]:
        """SOC, power [kW] and state of the battery."""
        d = self.device
        return {"soc": d.soc, "p_kw": d.p_kw, "enabled": d.enabled, "faulted": d.faulted}


class DirectPvLink:
    """In-process link to PV plant ``j``, rounding caps as SunSpec ``WMaxLimPct`` does.

    Args:
        device: The PV plant.
        wire: Wire parameters of the plants (nameplate ratings).
        j: Index of the plant in ``wire``.
    """

    def __init__(self, device: PvDevice, wire: PvWire, j: int) -> None:
        self.device = device
        self.wire = wire
        self.j = j

    def set_power_limit(self, kw: float | None) -> float | None:
        """Output cap [kW] (``None``/NaN lifts it); returns the percentage applied."""
        if kw is None or not np.isfinite(kw):
            self.device.set_curtailment_pct(None)
            return None
        pct = self.wire.pct(self.j, max(kw, 0.0))
        self.device.set_curtailment_pct(pct)
        return pct

    def start(self) -> None:
        """Connect the inverter."""
        self.device.set_enabled(True)

    def stop(self) -> None:
        """Disconnect the inverter."""
        self.device.set_enabled(False)

    def set_availability(self, available: bool) -> None:
        """Connect or disconnect the inverter."""
        self.device.set_enabled(available)

    def read(self) -> dict[str, Any]:
        """Power [kW] and state of the plant."""
        d = self.device
        return {"p_kw": d.p_kw, "enabled": d.enabled, "faulted": d.faulted}


@dataclass
class SetpointChanges:
    """Setpoints to send: ``(device index, value)`` per device kind.

    Values are the sanitised controller values (the link rounds them): charger and PV caps in kW
    or ``None`` for no cap, battery setpoints in kW (+ charge) within the advertised ratings.
    """

    chargers: list[tuple[int, float | None]] = field(default_factory=list)
    batteries: list[tuple[int, float]] = field(default_factory=list)
    pv: list[tuple[int, float | None]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.chargers) + len(self.batteries) + len(self.pv)


def _changed(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Indices where ``new`` differs from ``old`` bit for bit.

    The rounding functions return one canonical NaN for "no limit", so NaN equals NaN here; a
    signed zero at worst re-sends the same value.
    """
    return np.flatnonzero(new.view(np.int64) != old.view(np.int64))


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


class SetpointRouter:
    """Sends the controller's setpoints to the devices, only where the wire value changed.

    Args:
        devices: The site's devices (their held limits start as: no charger cap, battery 0 kW,
            no PV cap).
    """

    def __init__(self, devices: SiteDevices) -> None:
        self.devices = devices
        bank = devices.bank
        self.battery_wire = BatteryWire(bank.p_charge_max_kw, bank.p_discharge_max_kw)
        self.pv_wire = PvWire(devices.pv_inverter_kw)
        self.charger_links = [DirectChargerLink(c) for c in devices.chargers]
        self.battery_links = [
            DirectBatteryLink(b, self.battery_wire, j) for j, b in enumerate(devices.batteries)
        ]
        self.pv_links = [DirectPvLink(p, self.pv_wire, j) for j, p in enumerate(devices.pv)]
        # Wire values last sent, to detect changes (the devices' initial state), and the raw
        # arrays they came from: an unchanged raw array needs no rounding at all.
        self._charger_sent = devices.charger_requested_kw.copy()
        self._battery_sent = devices.battery_requested_kw.copy()
        self._pv_sent = np.full(len(devices.pv), np.nan)
        self._raw: list[bytes | None] = [None, None, None]
        self.sent = 0

    def _unchanged(self, kind: int, values: np.ndarray) -> bool:
        raw = values.tobytes()
        if raw == self._raw[kind]:
            return True
        self._raw[kind] = raw
        return False

    def changes(
        self, charger_kw: np.ndarray, battery_kw: np.ndarray, pv_limit_kw: np.ndarray
    ) -> SetpointChanges | None:
        """What must be sent for these setpoints (``None``: nothing changed); marks it sent.

        Args:
            charger_kw: Grid-side cap per charger [kW]; NaN = none.
            battery_kw: Setpoint per battery [kW], + charge.
            pv_limit_kw: Output cap per PV plant [kW]; NaN = none.
        """
        charger_kw = np.asarray(charger_kw, dtype=float)
        battery_kw = np.asarray(battery_kw, dtype=float)
        pv_limit_kw = np.asarray(pv_limit_kw, dtype=float)
        changes: SetpointChanges | None = None
        if len(charger_kw) and not self._unchanged(0, charger_kw):
            wire = charger_limits_kw(charger_kw)
            idx = _changed(wire, self._charger_sent)
            if len(idx):
                changes = SetpointChanges()
                changes.chargers = [(int(i), _optional(wire[i])) for i in idx]
                self._charger_sent = wire
        if len(battery_kw) and not self._unchanged(1, battery_kw):
            clipped = self.battery_wire.clip_kw(battery_kw)
            wire = self.battery_wire.setpoints_kw(clipped)
            idx = _changed(wire, self._battery_sent)
            if len(idx):
                changes = changes or SetpointChanges()
                changes.batteries = [(int(j), float(clipped[j])) for j in idx]
                self._battery_sent = wire
        if len(pv_limit_kw) and not self._unchanged(2, pv_limit_kw):
            wire = self.pv_wire.limits_kw(pv_limit_kw)
            idx = _changed(wire, self._pv_sent)
            if len(idx):
                changes = changes or SetpointChanges()
                wanted = np.maximum(pv_limit_kw, 0.0)
                changes.pv = [
                    (int(j), float(wanted[j]) if np.isfinite(wanted[j]) else None) for j in idx
                ]
                self._pv_sent = wire
        if changes is not None:
            self.sent += len(changes)
        return changes

    def apply_direct(
        self, charger_kw: np.ndarray, battery_kw: np.ndarray, pv_limit_kw: np.ndarray
    ) -> None:
        """Deliver the changed setpoints through the in-process links."""
        changes = self.changes(charger_kw, battery_kw, pv_limit_kw)
        if changes is None:
            return
        for i, limit in changes.chargers:
            self.charger_links[i].set_power_limit(limit)
        for j, p_kw in changes.batteries:
            self.battery_links[j].set_power_limit(p_kw)
        for j, cap in changes.pv:
            self.pv_links[j].set_power_limit(cap)
