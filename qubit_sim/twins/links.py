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

import math
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

    Two delivery paths give the devices the same numbers: :meth:`changes` lists what changed, for
    a caller that sends it per device (L4 coordination, fault injection, protocol links), and
    :meth:`apply_direct` writes the changed values into the devices' held-limit arrays at once
    when every link is the router's own in-process link.

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
        wire = self.battery_wire
        # Clip range [kW] and scale of a single battery's wire value, as floats.
        self._one_battery = (
            (
                -float(wire.discharge_max_kw[0]),
                float(wire.charge_max_kw[0]),
                float(wire.scale_up[0]),
                float(wire.scale_down[0]),
            )
            if bank.n == 1
            else (0.0, 0.0, 1.0, 1.0)
        )
        # The links as built: while the lists still hold exactly these, a delivery may bypass
        # them and write the device arrays (a replaced link gets its calls again).
        self._own_links = (
            list(self.charger_links),
            list(self.battery_links),
            list(self.pv_links),
        )
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

    def _charger_diff(self, charger_kw: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(wire values, changed mask)`` of the charger caps; marks them sent."""
        if not len(charger_kw) or self._unchanged(0, charger_kw):
            return None
        wire = charger_limits_kw(charger_kw)
        mask = wire.view(np.int64) != self._charger_sent.view(np.int64)
        count = int(np.count_nonzero(mask))
        if not count:
            return None
        self._charger_sent = wire
        self.sent += count
        return wire, mask

    def _battery_diff(
        self, battery_kw: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(clipped, wire values, changed indices)`` of the battery setpoints; marks them sent."""
        if not len(battery_kw) or self._unchanged(1, battery_kw):
            return None
        clipped = self.battery_wire.clip_kw(battery_kw)
        wire = self.battery_wire.setpoints_kw(clipped)
        idx = _changed(wire, self._battery_sent)
        if not len(idx):
            return None
        self._battery_sent = wire
        self.sent += len(idx)
        return clipped, wire, idx

    def _one_battery_diff(self, battery_kw: np.ndarray) -> float | None:
        """:meth:`_battery_diff` of a single finite setpoint, on floats: the setpoint the
        battery receives [kW] if its wire value changed, else ``None``; marks it sent.

        The same IEEE operations in the same order as :meth:`BatteryWire.setpoints_kw`, so the
        same bits: ``a if a > b else b`` is numpy's maximum of non-NaN values (which of two
        equal signed zeros it returns included), and ``copysign(round(x), x)`` its ``rint``.
        """
        if self._unchanged(1, battery_kw):
            return None
        low, high, up, down = self._one_battery
        p = float(battery_kw[0])
        clipped = p if p > low else low
        clipped = clipped if clipped < high else high
        scaled = -1000.0 * clipped * up / down
        raw = math.copysign(float(round(scaled)), scaled)
        wire = -(raw / up * down) / 1000.0
        sent = float(self._battery_sent[0])
        if wire == sent and math.copysign(1.0, wire) == math.copysign(1.0, sent):
            return None
        self._battery_sent = np.array([wire])
        self.sent += 1
        # A setpoint rounding to 0 W arrives from the integer register as -0.0 kW.
        return -0.0 if wire == 0.0 else wire

    def _pv_diff(self, pv_limit_kw: np.ndarray) -> list[tuple[int, float | None]] | None:
        """``(plant, wanted cap)`` of the changed PV caps; marks them sent."""
        if not len(pv_limit_kw) or self._unchanged(2, pv_limit_kw):
            return None
        wire = self.pv_wire.limits_kw(pv_limit_kw)
        idx = _changed(wire, self._pv_sent)
        if not len(idx):
            return None
        self._pv_sent = wire
        self.sent += len(idx)
        wanted = np.maximum(pv_limit_kw, 0.0)
        return [(int(j), float(wanted[j]) if np.isfinite(wanted[j]) else None) for j in idx]

    def changes(
        self, charger_kw: np.ndarray, battery_kw: np.ndarray, pv_limit_kw: np.ndarray
    ) -> SetpointChanges | None:
        """What must be sent for these setpoints (``None``: nothing changed); marks it sent.

        Args:
            charger_kw: Grid-side cap per charger [kW]; NaN = none.
            battery_kw: Setpoint per battery [kW], + charge.
            pv_limit_kw: Output cap per PV plant [kW]; NaN = none.
        """
        chargers = self._charger_diff(np.asarray(charger_kw, dtype=float))
        batteries = self._battery_diff(np.asarray(battery_kw, dtype=float))
        pv = self._pv_diff(np.asarray(pv_limit_kw, dtype=float))
        if chargers is None and batteries is None and pv is None:
            return None
        changes = SetpointChanges()
        if chargers is not None:
            wire, mask = chargers
            changes.chargers = [(int(i), _optional(wire[i])) for i in np.flatnonzero(mask)]
        if batteries is not None:
            clipped, _, idx = batteries
            changes.batteries = [(int(j), float(clipped[j])) for j in idx]
        if pv is not None:
            changes.pv = pv
        return changes

    def apply_direct(
        self, charger_kw: np.ndarray, battery_kw: np.ndarray, pv_limit_kw: np.ndarray
    ) -> None:
        """Deliver the changed setpoints through the in-process links.

        Charger caps and battery setpoints go into the devices' arrays for all changed devices
        at once, as the links would set them one by one; a link that was replaced in
        :attr:`charger_links` or :attr:`battery_links` is called per device instead.
        """
        own_chargers, own_batteries, _ = self._own_links
        if self.charger_links != own_chargers or self.battery_links != own_batteries:
            changes = self.changes(charger_kw, battery_kw, pv_limit_kw)
            if changes is not None:
                self.deliver(changes)
            return
        devices = self.devices
        chargers = self._charger_diff(np.asarray(charger_kw, dtype=float))
        if chargers is not None:
            wire, mask = chargers
            # Re-rounding a wire value is exact, so the link would hold this same value.
            np.copyto(devices.charger_requested_kw, wire, where=mask)
            devices.update_chargers(mask)
        battery_kw = np.asarray(battery_kw, dtype=float)
        if len(battery_kw) == 1 and math.isfinite(battery_kw[0]):
            received = self._one_battery_diff(battery_kw)
            if received is not None:
                devices.battery_requested_kw[0] = received
                devices.update_batteries(0)
        elif (batteries := self._battery_diff(battery_kw)) is not None:
            clipped, wire, idx = batteries
            if math.isfinite(np.add.reduce(wire)):
                # A setpoint rounding to 0 W arrives from the integer register as -0.0 kW
                # (the scalar path's sign), whichever zero the vector arithmetic produced.
                received = wire[idx]
                devices.battery_requested_kw[idx] = np.where(received == 0.0, -0.0, received)
                devices.update_batteries(idx)
            else:  # the links refuse non-finite setpoints with their own error
                for j in idx:
                    self.battery_links[j].set_power_limit(float(clipped[j]))
        pv = self._pv_diff(np.asarray(pv_limit_kw, dtype=float))
        if pv is not None:
            for j, cap in pv:
                self.pv_links[j].set_power_limit(cap)

    def deliver(self, changes: SetpointChanges) -> None:
        """Send ``changes`` through the links, one call per device."""
        for i, limit in changes.chargers:
            self.charger_links[i].set_power_limit(limit)
        for j, p_kw in changes.batteries:
            self.battery_links[j].set_power_limit(p_kw)
        for j, cap in changes.pv:
            self.pv_links[j].set_power_limit(cap)
