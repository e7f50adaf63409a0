"""Fault injection from a scenario's ``faults:`` section, on simulated time.

A fault entry becomes one or more windows ``[start_s, end_s)`` on the step grid (a start or end
between two steps acts at the next step start, where lock-step can act on it). A device's windows
of one kind are merged, so overlapping entries do not cancel each other out. Every window is
logged as ``fault_start`` / ``fault_end`` events. Both modes act on the same device state and
make the same random draws, so ``fast`` and ``wire`` give the same physics (the time series and
the fault events are equal); what only exists on the wire is listed per kind.

``link_drop`` (chargers): the stack cannot reach the charger. Its setpoint changes are *not
delivered*; the charger keeps the limit it holds and charges on it, and the latest setpoint is
delivered at the first control cycle after the link is back (if it still differs). On the wire
the twin's websocket is closed and the CSMS refuses its reconnection attempts (HTTP 503) until
the window ends; the twin queues its transaction messages and delivers them in order after it
reconnected on its back-off.

``latency`` (any devices): every message of the device's link arrives ``delay`` later. A
command sent at ``t`` acts at the first step start at or after ``t + delay`` (commands to one
device never overtake each other), in both modes; a ``command_delayed`` event records it. On
the wire the charge point twin's own messages (status, transaction messages, meter values)
also leave ``delay`` simulated seconds late, in order.

``message_loss`` (any devices): each message is lost with ``probability``. A lost command never
reaches the device, which keeps the limit it holds; the stack sends the latest setpoint again at
the next control cycle (``command_lost`` event). Draws come from the run's ``faults`` random
stream in a fixed order, so both modes lose the same commands. On the wire a charge point
twin's lost status notification or meter-value sample is dropped for good, while a lost
transaction message (start, stop, transaction meter values) is sent again by the OCPP queue
and counted once by the CSMS, so transaction energy still closes to the Wh. Each twin draws
from its own stream ``faults/<charger id>``.

``device_fault`` (one device): a charger reports ``Faulted`` (OCPP StatusNotification) and
delivers no power, its transaction stays open; a battery or PV plant sets its SunSpec alarm and
event bits and holds 0 kW. When the window ends the device returns to the limit it was last
given (``Charging``/``Available`` again).

``modbus_timeout`` (a battery or PV plant): its Modbus server does not answer (every request
fails with exception 0x0B, *gateway target device failed to respond*); setpoint writes cannot
be delivered and the device holds its last value. The latest setpoint is delivered at the first
control cycle after the window. Without a wire there is no server; the setpoints are withheld
the same way.

``meter_freeze`` (one device): the reported power and energy registers stop at their values at
the window start (OCPP meter values, SunSpec registers, link readings) while the physics goes
on; after the window they jump to the true values, so no energy is lost. A transaction start or
stop reads the charger's meter afresh (its billing reading is true) and the meter stays frozen
at that reading.

Under a controller that coordinates through Qubit L4 (the stack controllers) the commands that
pass the filter go out as L4 commands in both modes, and a device in a ``modbus_timeout`` window
answers no telemetry read in either (:class:`~qubit_sim.scenario.telemetry.TwinMeters`), so the
two modes also agree on the stack's view of the batteries. A charger's telemetry is what the CSMS
received on the wire and the twin's own meter in ``fast`` mode: under link faults only the wire's
is late, lost or missing.

The fraction form ``{fraction: x}`` draws ``max(1, round(x * n))`` chargers once per run from the
run's ``faults`` random stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qubit_sim.control.base import Setpoints
from qubit_sim.core.rng import RngTree
from qubit_sim.errors import ConfigIssue, ScenarioError
from qubit_sim.scenario.build import SiteModel
from qubit_sim.scenario.fault_targets import FAULT_DEVICE_KINDS, fault_devices
from qubit_sim.scenario.loader import format_path
from qubit_sim.scenario.schema import DeviceFraction
from qubit_sim.scenario.simulation import Simulation
from qubit_sim.twins.links import SetpointChanges, SetpointRouter

__all__ = [
    "DEVICE_KINDS",
    "SUPPORTED_KINDS",
    "FaultPlan",
    "FaultWindow",
    "FaultedSimulation",
    "apply_fault_transitions",
    "configure_endpoints",
    "log_fault_transitions",
    "plan_faults",
    "withhold_unreachable",
]

#: Fault kinds this version injects.
SUPPORTED_KINDS = (
    "link_drop",
    "latency",
    "message_loss",
    "device_fault",
    "modbus_timeout",
    "meter_freeze",
)

#: Device kinds each fault kind applies to (the loader checks entries by it).
DEVICE_KINDS = FAULT_DEVICE_KINDS


@dataclass(frozen=True)
class FaultWindow:
    """One merged fault window of one device.

    Attributes:
        kind: Fault kind (``"link_drop"``, ``"latency"``, ...).
        device_id: Device id as in the results columns, e.g. ``depot_ac3``.
        index: Index of the device in its kind's arrays (fleet, bank or PV order).
        start_s: First simulated second of the fault [s], a step start.
        end_s: First simulated second after it [s], a step start (or the horizon).
        device_kind: ``"charger"``, ``"battery"`` or ``"pv"``.
        value: The kind's parameter: ``delay`` [s] for latency, ``probability`` for
            message_loss (the largest of merged overlapping entries), else 0.
    """

    kind: str
    device_id: str
    index: int
    start_s: int
    end_s: int
    device_kind: str = "charger"
    value: float = 0.0


class FaultPlan:
    """The resolved fault windows of a run, and the commands they hold back.

    Args:
        windows: Merged windows (at most one per device and kind covering any instant).
        n_chargers: Chargers of the site.
        rng: Draws of message loss (the run's ``faults`` stream, after the fraction draws).
        step_s: Physics step [s] (delayed commands act at step starts).
    """

    def __init__(
        self,
        windows: list[FaultWindow],
        n_chargers: int,
        rng: np.random.Generator | None = None,
        step_s: int = 1,
    ) -> None:
        self.windows = tuple(sorted(windows, key=lambda w: (w.start_s, w.kind, w.index)))
        self.n_chargers = n_chargers
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.step_s = step_s
        self._starts: dict[int, list[FaultWindow]] = {}
        self._ends: dict[int, list[FaultWindow]] = {}
        for window in self.windows:
            self._starts.setdefault(window.start_s, []).append(window)
            self._ends.setdefault(window.end_s, []).append(window)
        self._by_kind: dict[str, list[FaultWindow]] = {}
        for window in self.windows:
            self._by_kind.setdefault(window.kind, []).append(window)
        self._link_windows = self._by_kind.get("link_drop", [])
        #: Delayed commands: ``(due_s, device_kind, index, value)`` in sending order.
        self.pending: list[tuple[int, str, int, float | None]] = []
        #: Commands withheld (link down, Modbus timeout), lost and delayed so far.
        self.counts = {"withheld": 0, "lost": 0, "delayed": 0}

    def __bool__(self) -> bool:
        return bool(self.windows)

    def has(self, kind: str) -> bool:
        """Whether any window is of ``kind``."""
        return kind in self._by_kind

    def starting(self, t_s: int) -> list[FaultWindow]:
        """Windows that begin at ``t_s``."""
        return self._starts.get(t_s, [])

    def ending(self, t_s: int) -> list[FaultWindow]:
        """Windows that end at ``t_s``."""
        return self._ends.get(t_s, [])

    def active(self, kind: str, t_s: int) -> list[FaultWindow]:
        """Windows of ``kind`` covering ``t_s``."""
        return [w for w in self._by_kind.get(kind, []) if w.start_s <= t_s < w.end_s]

    def links_down(self, t_s: int) -> np.ndarray:
        """Per charger, whether its link is down at ``t_s`` (bool array)."""
        down = np.zeros(self.n_chargers, dtype=bool)
        for window in self._link_windows:
            if window.start_s <= t_s < window.end_s:
                down[window.index] = True
        return down

    def _values(self, kind: str, t_s: int) -> dict[tuple[str, int], float]:
        return {(w.device_kind, w.index): w.value for w in self.active(kind, t_s)}

    def filter_commands(
        self,
        changes: SetpointChanges | None,
        t_s: int,
        router: SetpointRouter,
        down: np.ndarray | None = None,
        log: Any = None,
    ) -> SetpointChanges | None:
        """The commands of ``changes`` that reach their devices at ``t_s``.

        Unreachable devices (link down, Modbus timeout) and lost commands are withheld: the
        router forgets them and sends the latest setpoint again at the next control cycle.
        Delayed commands go to :attr:`pending` (:meth:`due` hands them out).

        Args:
            changes: What the router would send now.
            t_s: Simulated time [s].
            router: The router that produced ``changes``.
            down: Per charger, whether it cannot be reached (default: :meth:`links_down`).
            log: ``log(event_type, **data)`` for ``command_lost`` / ``command_delayed``.
        """
        if changes is None or not self.windows:
            return changes
        down = self.links_down(t_s) if down is None else down
        silent = {(w.device_kind, w.index) for w in self.active("modbus_timeout", t_s)}
        loss = self._values("message_loss", t_s)
        delay = self._values("latency", t_s)
        last_due: dict[tuple[str, int], int] = {(k, i): due for due, k, i, _ in self.pending}
        kept = SetpointChanges()
        lost = SetpointChanges()
        kinds = (
            ("charger", changes.chargers, kept.chargers, lost.chargers),
            ("battery", changes.batteries, kept.batteries, lost.batteries),
            ("pv", changes.pv, kept.pv, lost.pv),
        )
        for device_kind, commands, keep, drop in kinds:
            for index, value in commands:
                key = (device_kind, index)
                unreachable = key in silent or (device_kind == "charger" and bool(down[index]))
                if unreachable:
                    drop.append((index, value))  # type: ignore[arg-type]
                    self.counts["withheld"] += 1
                    continue
                p = loss.get(key, 0.0)
                if p > 0.0 and self.rng.random() < p:
                    drop.append((index, value))  # type: ignore[arg-type]
                    self.counts["lost"] += 1
                    if log is not None:
                        log("command_lost", device_kind=device_kind, index=index, value=value)
                    continue
                due = t_s
                if key in delay:
                    due = -(-(t_s + int(delay[key])) // self.step_s) * self.step_s
                due = max(due, last_due.get(key, due))  # no overtaking
                if due > t_s:
                    self.pending.append((due, device_kind, index, value))
                    last_due[key] = due
                    self.counts["delayed"] += 1
                    if log is not None:
                        log("command_delayed", device_kind=device_kind, index=index, due_s=due)
                    continue
                keep.append((index, value))  # type: ignore[arg-type]
        if len(lost):
            _forget(router, lost)
        return kept if len(kept) else None

    def due(self, t_s: int) -> SetpointChanges | None:
        """Delayed commands that arrive at ``t_s`` (removed from :attr:`pending`)."""
        if not any(item[0] <= t_s for item in self.pending):
            return None
        ready = SetpointChanges()
        rest = []
        for item in self.pending:
            due, device_kind, index, value = item
            if due > t_s:
                rest.append(item)
            elif device_kind == "charger":
                ready.chargers.append((index, value))
            elif device_kind == "battery":
                ready.batteries.append((index, float(value)))  # type: ignore[arg-type]
            else:
                ready.pv.append((index, value))
        self.pending = rest
        return ready if len(ready) else None


def _forget(router: SetpointRouter, withheld: SetpointChanges) -> None:
    """Make the router send the withheld setpoints again at its next cycle."""
    devices = router.devices
    for i, _ in withheld.chargers:
        # The device still holds its old value; remembering that as "sent" re-sends later.
        router._charger_sent[i] = devices.charger_requested_kw[i]
    for j, _ in withheld.batteries:
        router._battery_sent[j] = np.inf  # no wire value: whatever comes next is sent
    for j, _ in withheld.pv:
        router._pv_sent[j] = np.inf
    # The same controller arrays must be compared again next cycle.
    if withheld.chargers:
        router._raw[0] = None
    if withheld.batteries:
        router._raw[1] = None
    if withheld.pv:
        router._raw[2] = None
    router.sent -= len(withheld)


def _merge(spans: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    merged: list[tuple[int, int, float]] = []
    for start, end, value in sorted(spans):
        if merged and start <= merged[-1][1]:
            first, last, before = merged[-1]
            merged[-1] = (first, max(last, end), max(before, value))
        else:
            merged.append((start, end, value))
    return merged


def _on_grid(t_s: int, step_s: int) -> int:
    return -(-t_s // step_s) * step_s


def _devices_of(
    fault: Any, loc: tuple[Any, ...], site: SiteModel, rng: np.random.Generator
) -> tuple[list[tuple[str, int, str]], list[ConfigIssue]]:
    """``(device kind, index, id)`` of the devices ``fault`` (at ``loc``) names, and issues.

    The names are checked as the loader checks them; a ``{fraction: x}`` is drawn here.
    """
    ids = {
        "charger": list(site.fleet.ids),
        "battery": list(site.batteries.ids),
        "pv": list(site.pv_ids),
    }
    chosen, problems = fault_devices(fault, ids)
    issues = [ConfigIssue(format_path(loc + where), message) for where, message in problems]
    fraction = getattr(fault, "devices", None)
    if isinstance(fraction, DeviceFraction) and not issues:
        chargers = ids["charger"]
        k = max(1, round(fraction.fraction * len(chargers)))
        drawn = sorted(int(i) for i in rng.choice(len(chargers), size=k, replace=False))
        chosen = [("charger", i, chargers[i]) for i in drawn]
    return chosen, issues


def plan_faults(site: SiteModel) -> FaultPlan:
    """Resolve the scenario's ``faults:`` into windows on the step grid.

    Device fractions, then message losses, are drawn from ``site.rng.generator("faults")``.

    Raises:
        ScenarioError: naming each entry (``faults[i]``) with an unknown device id or a device
            its kind cannot act on.
    """
    spec = site.scenario.spec
    step_s = site.clock.step_s
    horizon_s = site.clock.duration_s
    rng = site.rng.generator("faults")
    issues: list[ConfigIssue] = []
    spans: dict[tuple[str, str, int, str], list[tuple[int, int, float]]] = {}
    for n, fault in enumerate(spec.faults):
        loc = ("faults", n)
        if fault.kind not in SUPPORTED_KINDS:  # pragma: no cover - the schema lists the kinds
            issues.append(ConfigIssue(f"faults[{n}].kind", f"unknown fault kind {fault.kind!r}"))
            continue
        devices, found = _devices_of(fault, loc, site, rng)
        issues += found
        value = float(getattr(fault, "delay", 0) or getattr(fault, "probability", 0.0))
        for r in range(fault.count):
            start = fault.at + r * (fault.repeat_every or 0)
            end = horizon_s if fault.duration is None else start + fault.duration
            start, end = _on_grid(start, step_s), min(_on_grid(end, step_s), horizon_s)
            if start >= horizon_s or end <= start:
                continue
            for device_kind, i, device_id in devices:
                key = (fault.kind, device_kind, i, device_id)
                spans.setdefault(key, []).append((start, end, value))
    if issues:
        raise ScenarioError(issues, site.scenario.name)
    windows = [
        FaultWindow(kind, device_id, i, start, end, device_kind, value)
        for (kind, device_kind, i, device_id), device_spans in spans.items()
        for start, end, value in _merge(device_spans)
    ]
    return FaultPlan(windows, site.fleet.n, rng, step_s)


def withhold_unreachable(
    changes: SetpointChanges | None, down: np.ndarray, router: SetpointRouter
) -> SetpointChanges | None:
    """Drop the charger setpoints whose link is down; the router sends them again later.

    Args:
        changes: What the router would send now.
        down: Per charger, whether its link is down.
        router: The router that produced ``changes``; it forgets the withheld values, so the
            latest setpoint goes out at the first control cycle after the link is back.

    Returns:
        The changes that can be delivered (``None``: none).
    """
    if changes is None or not down.any():
        return changes
    withheld = SetpointChanges(chargers=[(i, v) for i, v in changes.chargers if down[i]])
    if len(withheld):
        _forget(router, withheld)
    changes.chargers = [(i, v) for i, v in changes.chargers if not down[i]]
    return changes if len(changes) else None


def apply_fault_transitions(
    sim: Simulation, plan: FaultPlan, t_s: int, *, log: bool = True
) -> None:
    """Log the windows changing at ``t_s`` and set the device faults and meter freezes.

    Ends act before starts, so back-to-back windows hand over cleanly. At the horizon (after
    the last step) nothing is logged: the ``fault_start`` event already says ``until``.
    """
    if log:
        log_fault_transitions(sim, plan, t_s)
    devices = sim.devices
    for windows, on in ((plan.ending(t_s), False), (plan.starting(t_s), True)):
        for window in windows:
            if window.kind == "device_fault":
                devices.set_faulted(window.device_kind, window.index, on)
            elif window.kind == "meter_freeze":
                devices.freeze_meter(window.device_kind, window.index, on)


def configure_endpoints(
    plan: FaultPlan,
    t_s: int,
    twins: list[Any],
    servers: list[Any],
    n_batteries: int,
    rng: RngTree,
) -> None:
    """Set the wire-only effects of the windows changing at ``t_s`` on the endpoints.

    Args:
        plan: The run's faults.
        t_s: Simulated time [s].
        twins: Charge point twins in fleet order (``send_delay_s``, ``loss_probability``).
        servers: SunSpec servers, batteries first, then PV plants (``silent``).
        n_batteries: Batteries of the site (the first servers).
        rng: The run's random tree; twin ``i`` loses messages by stream ``faults/<id>``.
    """
    for windows, on in ((plan.ending(t_s), False), (plan.starting(t_s), True)):
        for window in windows:
            if window.kind == "modbus_timeout":
                offset = 0 if window.device_kind == "battery" else n_batteries
                servers[offset + window.index].silent = on
            if window.device_kind != "charger":
                continue
            twin = twins[window.index]
            if window.kind == "latency":
                twin.send_delay_s = window.value if on else 0.0
            elif window.kind == "message_loss":
                twin.loss_probability = window.value if on else 0.0
                if twin.loss_rng is None:
                    twin.loss_rng = rng.generator(f"faults/{window.device_id}")


def log_fault_transitions(sim: Simulation, plan: FaultPlan, t_s: int) -> None:
    """Write ``fault_end`` then ``fault_start`` events for the windows changing at ``t_s``."""
    for window in plan.ending(t_s):
        sim._event("fault_end", fault=window.kind, device_id=window.device_id)
    for window in plan.starting(t_s):
        sim._event(
            "fault_start",
            fault=window.kind,
            device_id=window.device_id,
            until=sim.site.clock.iso(window.end_s),
        )


def _command_logger(sim: Simulation, site: SiteModel) -> Any:
    """``log(event_type, device_kind, index, ...)`` writing events with the device id."""
    ids = {"charger": site.fleet.ids, "battery": site.batteries.ids, "pv": site.pv_ids}

    def log(kind: str, *, device_kind: str, index: int, **data: Any) -> None:
        sim._event(kind, device_id=ids[device_kind][index], **data)

    return log


class FaultedSimulation(Simulation):
    """``mode: fast`` with the scenario's faults.

    Setpoints pass the plan's filter (withheld, lost, delayed), as in ``wire`` mode; what passes
    goes to the devices, through Qubit L4 coordination for a controller that coordinates (the
    stack controllers), straight otherwise. Commands held back by latency arrive directly when
    due, as on the wire. Fault windows are logged as ``fault_start`` / ``fault_end`` events.
    """

    def __init__(self, site: SiteModel, *args: Any, **kwargs: Any) -> None:
        super().__init__(site, *args, **kwargs)
        self.faults = plan_faults(site)
        self._log_command = _command_logger(self, site)

    def _step(self, k: int) -> None:
        t_s = k * self.dt
        apply_fault_transitions(self, self.faults, t_s)
        self._deliver(self.faults.due(t_s))
        self._curtailing = self.devices.curtailing()
        super()._step(k)

    def _deliver(self, changes: SetpointChanges | None) -> None:
        if changes is None:
            return
        router = self.router
        for i, limit in changes.chargers:
            router.charger_links[i].set_power_limit(limit)
        for j, p_kw in changes.batteries:
            router.battery_links[j].set_power_limit(p_kw)
        for j, cap in changes.pv:
            router.pv_links[j].set_power_limit(cap)

    def _apply_setpoints(self, setpoints: Setpoints) -> Setpoints:
        changes = self.router.changes(
            setpoints.charger_kw, setpoints.battery_kw, setpoints.pv_limit_kw
        )
        now_s = self.engine.now_s
        log = self._log_command
        changes = self.faults.filter_commands(changes, now_s, self.router, log=log)
        if self.coordinator is not None:
            self.coordinator.apply(changes)
        else:
            self._deliver(changes)
        return self._held
