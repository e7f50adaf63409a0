"""Device telemetry for the stack controllers: twin meters -> L1 adapters -> the observation.

A controller that coordinates through Qubit L4 (``uses_coordination``) sees the devices' state
only as L1 telemetry. Each control cycle, :class:`TelemetryGate` reads every device's meter in its
native units, validates each reading with
:class:`~qubit_sim.stack.data.site_telemetry.TelemetryValidator` (units to kW/kWh/fraction, one
Qubit ``data_quality`` per point) and hands the controller an observation whose battery SOC comes
from those points:

* ``mode: fast`` (:class:`TwinMeters`): the twins' own meters — a charger's power [W] and energy
  register [Wh] while an EV is plugged in, a battery's power [W] and SunSpec SoC [%] (rounded to
  the SunSpec register, ``SoC_SF = -2``), a PV plant's power [W]; a battery or PV plant in a
  ``modbus_timeout`` fault window answers no read (its points are missing, as on the wire);
* ``mode: wire`` (:class:`WireMeters`): what the CSMS last received in ``MeterValues`` and what
  each :class:`~qubit_sim.protocols.modbus_link.ModbusLink` reads over Modbus TCP.

Both give the battery SOC bit for bit alike, so ``fast`` and ``wire`` runs stay identical.

Fallback (Qubit ``stale_state_seconds``): a battery whose SOC point is not ``measured`` is planned
from the last measured SOC (flagged ``estimated``) when that is at most ``stale_state_seconds``
old; otherwise, and when there never was one, from its SOC floor, and the battery is held at 0 kW
(its feasible range is 0..0 for the cycle and its setpoint 0 kW): the stack does not dispatch a
battery whose state it does not know. Every point that is not ``measured`` is written to the run's events as
``telemetry_flagged``; the run's manifest gets the points counted by quality (``telemetry``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from qubit_sim.control.base import Controller, Observation, Setpoints, SiteInfo
from qubit_sim.errors import ProtocolError
from qubit_sim.protocols.sunspec.codec import from_raw, to_raw
from qubit_sim.scenario.coordination import battery_asset_id, charger_asset_id
from qubit_sim.stack.coordinate import Telemetry
from qubit_sim.stack.data.site_telemetry import RawReading, TelemetryPoint, TelemetryValidator

if TYPE_CHECKING:  # pragma: no cover
    from qubit_sim.scenario.simulation import Simulation

__all__ = ["MeterSource", "TelemetryGate", "TwinMeters", "WireMeters", "attach_telemetry"]

#: Scale factor of the SunSpec SoC registers (models 713 and 802) of the battery twins.
SOC_SCALE_FACTOR = -2


class MeterSource(Protocol):
    """Reads every device's meter at simulated time ``now_s``, in the device's own units."""

    def read(self, now_s: int) -> list[RawReading]:
        """One reading per device and quantity."""
        ...


class TwinMeters:
    """The twins' own meters (``mode: fast``)."""

    def __init__(self, sim: Simulation) -> None:
        self.devices = sim.devices
        self.charger_ids = [charger_asset_id(str(c)) for c in sim.fleet.ids]
        self.battery_ids = [battery_asset_id(str(b)) for b in sim.bank.ids]
        self.pv_ids = [f"ast_pv_{p}" for p in sim.site.pv_ids]
        #: The run's fault plan (a ``mode: fast`` run with a ``faults:`` section), else ``None``.
        self.faults = getattr(sim, "faults", None)

    def read(self, now_s: int) -> list[RawReading]:
        # A battery or PV plant in a Modbus timeout window answers no read, as its silent
        # server on the wire: its points are missing.
        silent = (
            {(w.device_kind, w.index) for w in self.faults.active("modbus_timeout", now_s)}
            if self.faults
            else set()
        )
        readings: list[RawReading] = []
        for asset, charger in zip(self.charger_ids, self.devices.chargers, strict=True):
            if charger.ev_connected(1):
                readings.append(RawReading(asset, "power", charger.p_kw(1) * 1000.0, "W", now_s))
                readings.append(RawReading(asset, "energy", charger.e_register_wh(1), "Wh", now_s))
        for j, (asset, battery) in enumerate(
            zip(self.battery_ids, self.devices.batteries, strict=True)
        ):
            if ("battery", j) in silent:
                readings.append(RawReading(asset, "power", None, "W", now_s))
                readings.append(RawReading(asset, "soc", None, "percent", now_s))
                continue
            readings.append(RawReading(asset, "power", battery.p_kw * 1000.0, "W", now_s))
            soc_pct = from_raw(to_raw(100.0 * battery.soc, SOC_SCALE_FACTOR), SOC_SCALE_FACTOR)
            readings.append(RawReading(asset, "soc", soc_pct, "percent", now_s))
        for j, (asset, plant) in enumerate(zip(self.pv_ids, self.devices.pv, strict=True)):
            power = None if ("pv", j) in silent else plant.p_kw * 1000.0
            readings.append(RawReading(asset, "power", power, "W", now_s))
        return readings


class WireMeters:
    """What the stack received over the wire (``mode: wire``): CSMS meter values, Modbus reads."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.charger_ids = [charger_asset_id(str(c)) for c in sim.fleet.ids]
        self.battery_ids = [battery_asset_id(str(b)) for b in sim.bank.ids]
        self.pv_ids = [f"ast_pv_{p}" for p in sim.site.pv_ids]
        self._epoch: datetime = sim.site.clock.to_utc(0)

    def _time_s(self, timestamp: str | None) -> int | None:
        if not timestamp:
            return None
        when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        return int((when - self._epoch).total_seconds())

    def read(self, now_s: int) -> list[RawReading]:
        sim = self.sim
        readings: list[RawReading] = []
        if sim.csms is not None:
            for i, asset in enumerate(self.charger_ids):
                reading = sim.csms.read(sim.fleet.ids[i], 1)
                if reading.transaction_id is None:
                    continue
                at = self._time_s(reading.timestamp)
                readings.append(RawReading(asset, "power", reading.p_kw, "kW", at))
                readings.append(RawReading(asset, "energy", reading.e_register_kwh, "kWh", at))
        for links, ids in ((sim.battery_links, self.battery_ids), (sim.pv_links, self.pv_ids)):
            for link, asset in zip(links, ids, strict=True):
                try:
                    values = sim._call(link.read())
                except ProtocolError:  # the device did not answer: its points are missing
                    values = {"p_kw": None, "soc": None} if ids is self.battery_ids else {}
                readings.append(RawReading(asset, "power", values.get("p_kw"), "kW", now_s))
                if "soc" in values:
                    readings.append(RawReading(asset, "soc", values.get("soc"), "fraction", now_s))
        return readings


class TelemetryGate(Controller):
    """Wraps a controller so that it sees the battery state as validated L1 telemetry.

    Args:
        inner: The controller (already reset by the simulation).
        meters: Where the readings come from.
        battery_ids: Battery asset ids, in bank order.
        soc_floor: SOC floor of each battery, the fallback with no usable SOC [fraction].
        validator: The L1 validator (its ``max_age_s`` is the stale-state limit).
        sink: Receives one event record per flagged point.
        observe: Receives each measured reading as L4 :class:`Telemetry` (staleness tracking).
        iso: Formats a simulated time as UTC ISO text.
    """

    def __init__(
        self,
        inner: Controller,
        meters: MeterSource,
        battery_ids: list[str],
        soc_floor: np.ndarray,
        validator: TelemetryValidator,
        *,
        sink: Any = None,
        observe: Any = None,
        iso: Any = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.uses_coordination = inner.uses_coordination
        self.meters = meters
        self.battery_ids = list(battery_ids)
        self.soc_floor = np.asarray(soc_floor, dtype=float)
        self.validator = validator
        self._sink = sink
        self._observe = observe
        self._iso = iso
        #: Points of the last control cycle.
        self.points: list[TelemetryPoint] = []

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        """Reset the wrapped controller."""
        self.inner.reset(site, rng)

    def stats(self) -> dict[str, float]:
        """The wrapped controller's figures."""
        return self.inner.stats()

    def act(self, obs: Observation) -> Setpoints:
        """Read the meters, validate, replace the battery state, and ask the wrapped controller."""
        now = obs.t_s
        self.points = [self.validator.validate(r, now) for r in self.meters.read(now)]
        soc_points = {p.asset_id: p for p in self.points if p.quantity == "soc"}
        n = len(self.battery_ids)
        soc = np.empty(n)
        p_min = np.array(obs.battery_p_min_kw, dtype=float, copy=True)
        p_max = np.array(obs.battery_p_max_kw, dtype=float, copy=True)
        idle = np.zeros(n, dtype=bool)
        for j, asset in enumerate(self.battery_ids):
            point = soc_points.get(asset)
            if point is not None and point.usable and point.value is not None:
                soc[j] = point.value
                continue
            estimate = self.validator.estimate(asset, "soc")
            fresh = (
                estimate is not None
                and estimate.time_s is not None
                and now - estimate.time_s <= self.validator.max_age_s
            )
            if fresh and estimate is not None and estimate.value is not None:
                soc[j] = estimate.value
                fallback = "estimated"
            else:
                soc[j] = (
                    estimate.value
                    if estimate and estimate.value is not None
                    else float(self.soc_floor[j])
                )
                p_min[j] = p_max[j] = 0.0
                idle[j] = True
                fallback = "held_idle"
            self._flag(now, point, asset, fallback, float(soc[j]))
        for point in self.points:
            if point.quantity != "soc" and not point.usable:
                self._flag(now, point, point.asset_id, "none", None)
            elif point.usable and self._observe is not None and point.quantity == "power":
                self._observe(Telemetry(point.asset_id, now, float(point.value or 0.0), "measured"))
        seen = replace(obs, battery_soc=soc, battery_p_min_kw=p_min, battery_p_max_kw=p_max)
        setpoints = self.inner.act(seen)
        if idle.any():
            # Planners may not clip to the feasible range (one battery takes the plan as is).
            battery_kw = np.where(idle, 0.0, setpoints.battery_kw)
            setpoints = Setpoints(setpoints.charger_kw, battery_kw, setpoints.pv_limit_kw)
        return setpoints

    def _flag(
        self,
        now: int,
        point: TelemetryPoint | None,
        asset: str,
        fallback: str,
        value: float | None,
    ) -> None:
        if self._sink is None:
            return
        self._sink(
            {
                "t_s": now,
                "time": self._iso(now) if self._iso else None,
                "type": "telemetry_flagged",
                "asset_id": asset,
                "data": {
                    "quantity": point.quantity if point else "soc",
                    "quality": point.quality if point else "missing",
                    "flags": list(point.flags) if point else ["communication_error"],
                    "reading": point.value if point else None,
                    "fallback": fallback,
                    "value_used": value,
                },
            }
        )

    def summary(self) -> dict[str, Any]:
        """Points counted by quality and flag (for the run's manifest)."""
        return {
            "points_by_quality": self.validator.summary(),
            "flags": dict(sorted(self.validator.flags.items())),
        }


def attach_telemetry(sim: Simulation, meters: MeterSource | None = None) -> TelemetryGate | None:
    """Put a :class:`TelemetryGate` in front of a coordinated run's controller.

    Does nothing (returns ``None``) when the run has no L4 coordinator. ``meters`` defaults to
    :class:`WireMeters` for a simulation with a CSMS, else :class:`TwinMeters`.
    """
    coordinator = getattr(sim, "coordinator", None)
    if coordinator is None or isinstance(sim.controller, TelemetryGate):
        return None
    if meters is None:
        meters = WireMeters(sim) if hasattr(sim, "csms") else TwinMeters(sim)
    specs = sim.site.scenario.spec.assets.batteries
    floor = np.array([float(b.soc_min) for b in specs]) if specs else np.zeros(0)
    if len(floor) != sim.bank.n:
        floor = np.zeros(sim.bank.n)
    config = coordinator.config
    gate = TelemetryGate(
        sim.controller,
        meters,
        coordinator.battery_ids,
        floor,
        TelemetryValidator(max_age_s=config.stale_state_seconds),
        sink=sim._write_record,
        observe=coordinator.dispatch.observe,
        iso=sim.site.clock.iso,
    )
    sim.controller = gate
    return gate
