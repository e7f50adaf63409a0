"""Qubit L4 coordination inside a run: the stack's setpoints become commands with a lifecycle.

A controller that declares ``uses_coordination = True`` (the Qubit stack controllers) has every
changed device setpoint turned into an L4 :class:`~qubit_sim.stack.coordinate.Command` and sent
through a :class:`~qubit_sim.stack.coordinate.DispatchEngine`:

* charger: ``SET_CHARGE_RATE`` with the grid-side limit [kW];
* battery: ``SET_CHARGE_RATE`` (charging) or ``SET_DISCHARGE_RATE`` (discharging) with the
  magnitude [kW]; a sign flip yields the documented pair, the old direction set to 0 first
  (charge -> discharge: ``SET_CHARGE_RATE 0`` then ``SET_DISCHARGE_RATE x``); 0 kW is a zero rate
  in the direction last commanded;
* PV curtailment and lifting a charger cap (no limit) have no L4 command type: they stay on the
  direct path, and lifting a cap cancels the charger's unfinished commands so that a late retry
  cannot bring the old cap back.

Commands go through L4 links that wrap the in-process ``Direct*Link`` of
:mod:`qubit_sim.twins.links` (:class:`DirectL4Link`). Those answer at once, so when every command
succeeds the devices hold exactly what the direct path would give them, at the same instant.
Retries with back-off and timeouts run on simulated time: the coordinator schedules an engine
event at the next instant something is due (a retry, a timeout) only while commands are
outstanding, so an idle run has no coordination events at all. The physics reads what the devices
hold, so a command that failed or was never answered leaves the old limit in force.

State machines: one EV charger machine per charger (``plug_in`` at EV arrival, ``start_charge``
when the held limit lets the EV draw, ``complete`` once the energy need is met, ``unplug`` at
departure, which makes the dispatch engine cancel that charger's unfinished commands) and one
battery machine per battery (charge/discharge/stop from the held setpoint). ``start_charge`` and
``complete`` are evaluated at plug-in, at every control instant and every coordination wake-up —
the only instants a held limit changes — so ``complete`` is stamped at the first of those after
the need was met.

Every coordination event is written to the run's events (``events.jsonl``) as
``{"t_s", "time", "type", "asset_id", "data"}`` with ``data`` from
:func:`~qubit_sim.stack.coordinate.to_record`.

Fault injection: ``link_wrapper(asset_id, link) -> link`` wraps the L4 link of a device, e.g.
with :class:`FailingLink` (refuses the first N calls) or :class:`SilentLink` (never answers).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from qubit_sim.core.engine import Engine
from qubit_sim.errors import QubitSimError
from qubit_sim.stack.coordinate import (
    HOLD_STATES,
    BatteryState,
    ChargerState,
    Command,
    CommandState,
    CommandType,
    CoordinatorConfig,
    DeviceLink,
    DispatchEngine,
    Event,
    EventBus,
    LinkRegistry,
    LinkResult,
    Reply,
    StateMachine,
    Telemetry,
    create_battery_state_machine,
    create_ev_charger_state_machine,
    to_record,
)
from qubit_sim.twins.links import (
    DirectBatteryLink,
    DirectChargerLink,
    SetpointChanges,
    SetpointRouter,
)

__all__ = [
    "Coordinator",
    "DeviceLinks",
    "DirectL4Link",
    "FailingLink",
    "LinkWrapper",
    "SilentLink",
    "battery_asset_id",
    "charger_asset_id",
    "site_id_for",
]

LinkWrapper = Callable[[str, DeviceLink], DeviceLink]
"""``(asset_id, link) -> link``: replaces a device's L4 link (fault injection, tracing)."""


def charger_asset_id(charger_id: str) -> str:
    """Qubit asset id of the charger with fleet id ``charger_id``."""
    return f"ast_charger_{charger_id}"


def battery_asset_id(battery_id: str) -> str:
    """Qubit asset id of the battery with bank id ``battery_id``."""
    return f"ast_battery_{battery_id}"


def site_id_for(name: str) -> str:
    """A Qubit site id (``sit_...``) for a scenario name."""
    return "sit_" + (re.sub(r"[^a-zA-Z0-9_-]", "_", name) or "site")


class DirectL4Link:
    """L4 device link over an in-process ``Direct*Link``: every call answers at once.

    Args:
        asset_id: The device's Qubit asset id.
        direct: The twin's in-process link (charger, battery or PV).
        now_s: Current simulated time [s], stamped on readings.
    """

    def __init__(
        self,
        asset_id: str,
        direct: DirectChargerLink | DirectBatteryLink,
        now_s: Callable[[], int],
    ) -> None:
        self.asset_id = asset_id
        self.direct = direct
        self.now_s = now_s

    def _call(self, call: Callable[[], Any]) -> LinkResult:
        try:
            outcome = call()
        except QubitSimError as exc:  # the device refused the value
            return LinkResult.rejected(str(exc))
        if outcome is False:
            return LinkResult.rejected("refused by the device")
        return LinkResult.ok()

    def set_power_limit(self, kw: float) -> LinkResult:
        """Charger: cap [kW] >= 0; battery: signed setpoint [kW, + charge]."""
        return self._call(lambda: self.direct.set_power_limit(kw))

    def start(self) -> LinkResult:
        """Start a session (charger) or connect (battery)."""
        return self._call(self.direct.start)

    def stop(self) -> LinkResult:
        """Stop the session (charger) or disconnect (battery)."""
        return self._call(self.direct.stop)

    def set_availability(self, available: bool) -> LinkResult:
        """Make the device operative or inoperative."""
        return self._call(lambda: self.direct.set_availability(available))

    def read(self) -> Telemetry:
        """Power [kW] and state of the device now."""
        reading = self.direct.read()
        soc = reading.get("ev_soc", reading.get("soc"))
        return Telemetry(
            asset_id=self.asset_id,
            time=self.now_s(),
            p_kw=float(reading["p_kw"]),
            status=str(reading.get("status", "enabled" if reading.get("enabled") else "")),
            soc=None if soc is None else float(soc),
        )


@dataclass
class DeviceLinks:
    """How the coordinator reaches the devices of a run.

    Attributes:
        chargers / batteries: The L4 link of each charger and battery, in fleet and bank order.
        set_pv_cap: ``(plant index, cap [kW] or None)``: PV curtailment (no L4 command type).
        lift_charger_cap: ``(charger index)``: remove a charger's cap (no L4 command type).
    """

    chargers: list[DeviceLink]
    batteries: list[DeviceLink]
    set_pv_cap: Callable[[int, float | None], object]
    lift_charger_cap: Callable[[int], object]

    @classmethod
    def direct(cls, router: SetpointRouter, now_s: Callable[[], int]) -> DeviceLinks:
        """In-process links (``mode: fast``) over the router's ``Direct*Link``."""
        fleet_ids = [charger_asset_id(str(c)) for c in router.devices.fleet.ids]
        bank_ids = [battery_asset_id(str(b)) for b in router.devices.bank.ids]
        return cls(
            chargers=[
                DirectL4Link(a, link, now_s)
                for a, link in zip(fleet_ids, router.charger_links, strict=True)
            ],
            batteries=[
                DirectL4Link(a, link, now_s)
                for a, link in zip(bank_ids, router.battery_links, strict=True)
            ],
            set_pv_cap=lambda j, cap: router.pv_links[j].set_power_limit(cap),
            lift_charger_cap=lambda i: router.charger_links[i].set_power_limit(None),
        )


class _GatedLink:
    """A link wrapper whose control calls pass through :meth:`_gate`; readings still work."""

    link: DeviceLink

    def _gate(self, call: Callable[[], LinkResult]) -> LinkResult:
        raise NotImplementedError

    def set_power_limit(self, kw: float) -> LinkResult:
        """Passed through :meth:`_gate`, which decides per wrapper."""
        return self._gate(lambda: self.link.set_power_limit(kw))

    def start(self) -> LinkResult:
        """Passed through :meth:`_gate`, which decides per wrapper."""
        return self._gate(self.link.start)

    def stop(self) -> LinkResult:
        """Passed through :meth:`_gate`, which decides per wrapper."""
        return self._gate(self.link.stop)

    def set_availability(self, available: bool) -> LinkResult:
        """Passed through :meth:`_gate`, which decides per wrapper."""
        return self._gate(lambda: self.link.set_availability(available))

    def read(self) -> Telemetry:
        """Readings still work."""
        return self.link.read()


class FailingLink(_GatedLink):
    """Wraps a link so that ``failures`` control calls, after the first ``skip``, are refused.

    Args:
        link: The real link; called outside the failing calls.
        failures: Control calls (``set_power_limit``, ``start``, ``stop``, ``set_availability``)
            to refuse.
        skip: Control calls delegated before the failures start.
        error: Refusal text.
    """

    def __init__(
        self, link: DeviceLink, failures: int, *, skip: int = 0, error: str = "injected failure"
    ) -> None:
        if failures < 0 or skip < 0:
            raise QubitSimError(f"failures {failures} and skip {skip} must be >= 0")
        self.link = link
        self.remaining = failures
        self.skip = skip
        self.error = error
        self.calls = 0

    def _gate(self, call: Callable[[], LinkResult]) -> LinkResult:
        self.calls += 1
        if self.calls > self.skip and self.remaining > 0:
            self.remaining -= 1
            return LinkResult.rejected(self.error)
        return call()


class SilentLink(_GatedLink):
    """Wraps a link that stops answering: after ``answered`` delegated control calls, every call
    is accepted for delivery and its reply never arrives (the command times out).

    Args:
        link: The real link.
        answered: Control calls delegated before the link falls silent.
    """

    def __init__(self, link: DeviceLink, answered: int = 0) -> None:
        if answered < 0:
            raise QubitSimError(f"answered {answered} must be >= 0")
        self.link = link
        self.answered = answered
        self.calls = 0
        self.unanswered: list[Reply] = []

    def _gate(self, call: Callable[[], LinkResult]) -> LinkResult:
        self.calls += 1
        if self.calls <= self.answered:
            return call()
        reply = Reply()
        self.unanswered.append(reply)
        return LinkResult.pending(reply)


class Coordinator:
    """Routes a run's changed setpoints through Qubit L4 dispatch on simulated time.

    Args:
        router: The run's setpoint router (its direct links and devices).
        engine: The simulation engine (clock and one-off events).
        epoch: UTC instant of simulated second 0.
        horizon_s: End of the run [s]; no wake-up is scheduled at or after it.
        sink: Receives one JSON-able record per coordination event, in time order.
        site_id: Qubit site id (``sit_...``).
        config: L4 settings; Qubit defaults (5 s retry base, 30 s timeout, 3 retries, x2).
        link_wrapper: Optional ``(asset_id, link) -> link`` applied to every device's L4 link.
        links: How the devices are reached (default: :meth:`DeviceLinks.direct` over the
            router; a wire run passes its OCPP and Modbus links).

    Attributes:
        dispatch: The L4 dispatch engine (every command and its history).
        bus: Its event bus.
        charger_ids / battery_ids: Asset ids, in fleet and bank order.
        charger_machines / battery_machines: The asset state machines, same order.
        links: The L4 link registry (wrapped links).
        wakeups: Coordination wake-ups that ran.
    """

    def __init__(
        self,
        router: SetpointRouter,
        engine: Engine,
        epoch: datetime,
        horizon_s: int,
        sink: Callable[[dict[str, Any]], None],
        *,
        site_id: str = "sit_default",
        config: CoordinatorConfig | None = None,
        link_wrapper: LinkWrapper | None = None,
        links: DeviceLinks | None = None,
    ) -> None:
        self.router = router
        self.devices = router.devices
        self.fleet = router.devices.fleet
        self.engine = engine
        self.epoch = epoch
        self.horizon_s = int(horizon_s)
        self._sink = sink
        self.config = config if config is not None else CoordinatorConfig(site_id=site_id)
        self.bus = EventBus()
        self.bus.subscribe(None, self._record)
        self.links = LinkRegistry()
        self.dispatch = DispatchEngine(self.bus, self.links, self.config, epoch=epoch)
        now = self._now
        self.charger_ids = [charger_asset_id(str(c)) for c in self.fleet.ids]
        self.battery_ids = [battery_asset_id(str(b)) for b in self.devices.bank.ids]
        self.device_links = links if links is not None else DeviceLinks.direct(router, now)
        device_links: list[tuple[str, DeviceLink]] = [
            *zip(self.charger_ids, self.device_links.chargers, strict=True),
            *zip(self.battery_ids, self.device_links.batteries, strict=True),
        ]
        for asset_id, l4 in device_links:
            if link_wrapper is not None:
                l4 = link_wrapper(asset_id, l4)
            self.links.register(asset_id, l4)
        self.charger_machines: list[StateMachine] = [
            create_ev_charger_state_machine(a, self.bus, now, epoch=epoch) for a in self.charger_ids
        ]
        self.battery_machines: list[StateMachine] = [
            create_battery_state_machine(a, self.bus, now, epoch=epoch) for a in self.battery_ids
        ]
        # Direction last commanded per battery (+1 charge, -1 discharge): decides the type of
        # a 0 kW command and when a change is a flip.
        self._battery_direction = [1] * len(self.battery_ids)
        self._wake_times: set[int] = set()
        self.wakeups = 0

    # ------------------------------------------------------------------ events
    def _now(self) -> int:
        return self.engine.now_s

    def _record(self, event: Event) -> None:
        record = to_record(event)
        t_s = (event.time - self.epoch).total_seconds()
        self._sink(
            {
                "t_s": int(t_s) if float(t_s).is_integer() else t_s,
                "time": record["time"],
                "type": record["type"],
                "asset_id": record["asset_id"],
                "data": record["data"],
            }
        )

    # -------------------------------------------------------------- setpoints
    def apply(self, changes: SetpointChanges | None) -> None:
        """Deliver the changed setpoints of a control cycle (PV directly, the rest through L4)."""
        now = self._now()
        if changes is not None:
            for j, cap in changes.pv:
                self.device_links.set_pv_cap(j, cap)
            self.dispatch.poll_replies(now)
            self.dispatch.check_timeouts(now)
            created: list[Command] = []
            for i, limit in changes.chargers:
                created += self._charger_commands(i, limit, now)
            for j, p_kw in changes.batteries:
                created += self._battery_commands(j, p_kw, now)
            for command in created:
                if command.state is not CommandState.PENDING:
                    continue
                if self.dispatch.asset_state(command.asset_id) in HOLD_STATES:
                    continue  # held: the engine's step sends it once the asset is back
                self.dispatch.dispatch_command(command, self.links.get(command.asset_id), now)
            self.dispatch.step(now)
        self._after(now)

    def _charger_commands(self, i: int, limit: float | None, now: int) -> list[Command]:
        asset_id = self.charger_ids[i]
        if limit is None:
            # No L4 command lifts a cap: cancel what is unfinished so no retry re-imposes one.
            self.dispatch.cancel_asset_commands(asset_id, now, "power limit lifted (no cap)")
            self.device_links.lift_charger_cap(i)
            return []
        command = self.dispatch.create_command(
            asset_id, CommandType.SET_CHARGE_RATE, now, value_kw=limit, now=now
        )
        return [command]

    def _battery_commands(self, j: int, p_kw: float, now: int) -> list[Command]:
        asset_id = self.battery_ids[j]
        direction = 1 if p_kw > 0 else -1 if p_kw < 0 else self._battery_direction[j]
        commands = []
        if direction != self._battery_direction[j]:
            # A flip: the old direction goes to 0 first, as the L3 -> L4 contract orders it.
            commands.append(
                self.dispatch.create_command(
                    asset_id, _BATTERY_TYPE[self._battery_direction[j]], now, value_kw=0.0, now=now
                )
            )
        self._battery_direction[j] = direction
        commands.append(
            self.dispatch.create_command(
                asset_id, _BATTERY_TYPE[direction], now, value_kw=abs(p_kw), now=now
            )
        )
        return commands

    # ------------------------------------------------------------- EV sessions
    def plugged(self, charger: int) -> None:
        """An EV plugged into ``charger`` (after the fleet registered it)."""
        machine = self.charger_machines[charger]
        if machine.can_trigger("plug_in"):
            machine.trigger("plug_in", self._now())
        self._update_chargers([charger])

    def unplugged(self, charger: int) -> None:
        """The EV of ``charger`` left: its machine unplugs and its unfinished commands end."""
        machine = self.charger_machines[charger]
        if machine.can_trigger("unplug"):
            machine.trigger("unplug", self._now())
        self._after(self._now(), chargers=False)

    def observe(self) -> None:
        """Update the charger machines from the fleet's state at a control instant."""
        self._update_chargers(range(len(self.charger_machines)))

    # ---------------------------------------------------------------- internals
    def _update_chargers(self, chargers: Iterable[int]) -> None:
        fleet = self.fleet
        now = self._now()
        ev_max = None
        for i in chargers:
            machine = self.charger_machines[i]
            state = machine.state
            if state == ChargerState.PREPARING:
                if ev_max is None:
                    ev_max = fleet.max_grid_kw(self.devices.step_s)
                limit = self.devices.charger_limit_kw[i]
                draws = ev_max[i] > 0.0 and (math.isnan(limit) or limit > 0.0)
                if draws and fleet.e_needed_kwh[i] > 0.0:
                    machine.trigger("start_charge", now)
                    state = machine.state
            active = state in (ChargerState.CHARGING, ChargerState.SUSPENDED)
            if active and fleet.e_needed_kwh[i] <= 0.0:
                machine.trigger("complete", now)

    def _update_batteries(self) -> None:
        setpoints = self.devices.battery_setpoint_kw
        now = self._now()
        for j, machine in enumerate(self.battery_machines):
            p_kw = float(setpoints[j])
            target, trigger = (
                (BatteryState.CHARGING, "charge")
                if p_kw > 0
                else (BatteryState.DISCHARGING, "discharge")
                if p_kw < 0
                else (BatteryState.IDLE, "stop")
            )
            if machine.state != target and machine.can_trigger(trigger):
                machine.trigger(trigger, now)

    def _after(self, now: int, *, chargers: bool = True) -> None:
        self._update_batteries()
        if chargers:
            self.observe()
        due = self._next_due_s()
        if due is not None and now < due < self.horizon_s and due not in self._wake_times:
            self._wake_times.add(due)
            self.engine.at(due, partial(self._wake, due))

    def _wake(self, t_s: int) -> None:
        self._wake_times.discard(t_s)
        self.wakeups += 1
        self.dispatch.step(t_s)
        self._after(t_s)

    def _next_due_s(self) -> int | None:
        """Earliest retry or timeout of an unfinished command [s], rounded up."""
        earliest: datetime | None = None
        for asset_id in (*self.charger_ids, *self.battery_ids):
            for command in self.dispatch.ledger.active(asset_id):
                if command.state is CommandState.PENDING:
                    when = command.due_at
                elif command.state is CommandState.DISPATCHED and command.dispatched_at:
                    when = command.dispatched_at + timedelta(seconds=command.timeout_seconds)
                else:
                    continue
                if earliest is None or when < earliest:
                    earliest = when
        if earliest is None:
            return None
        return math.ceil((earliest - self.epoch).total_seconds())

    def state_counts(self) -> dict[str, int]:
        """Commands per lifecycle state."""
        return self.dispatch.state_counts()


_BATTERY_TYPE = {1: CommandType.SET_CHARGE_RATE, -1: CommandType.SET_DISCHARGE_RATE}
