"""Fault injection from a scenario's ``faults:`` section, on simulated time.

A fault entry becomes one or more windows ``[start_s, end_s)`` on the step grid (a start or end
between two steps acts at the next step start, where lock-step can act on it). A device's windows
of one kind are merged, so overlapping entries do not cancel each other out.

``link_drop`` (chargers): while a charger's link is down the stack cannot reach it. Its setpoint
changes are *not delivered*; the charger keeps the limit it holds and charges on it, and the
latest setpoint is delivered at the first control cycle after the link is back (if it still
differs). This holds in both modes, so ``fast`` and ``wire`` give the same results:

* ``wire`` (:mod:`qubit_sim.scenario.wire`): the twin's websocket is closed and the CSMS refuses
  its reconnection attempts (HTTP 503) until the window ends; the twin queues its transaction
  messages meanwhile and delivers them in order after it reconnected on its back-off;
* ``fast`` (:class:`FaultedSimulation`): no socket to close; setpoints are withheld the same way.

The fraction form ``{fraction: x}`` draws ``max(1, round(x * n))`` chargers once per run from the
run's ``faults`` random stream. The other kinds (``latency``, ``message_loss``, ``device_fault``,
``modbus_timeout``, ``meter_freeze``) are not supported yet: a scenario using them is rejected.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import numpy as np

from qubit_sim.control.base import Setpoints
from qubit_sim.errors import ConfigIssue, ScenarioError
from qubit_sim.scenario.build import SiteModel
from qubit_sim.scenario.schema import DeviceFraction, LinkDropSpec
from qubit_sim.scenario.simulation import Simulation
from qubit_sim.twins.links import SetpointChanges, SetpointRouter

__all__ = [
    "SUPPORTED_KINDS",
    "FaultPlan",
    "FaultWindow",
    "FaultedSimulation",
    "log_fault_transitions",
    "plan_faults",
    "withhold_unreachable",
]

#: Fault kinds this version injects; a scenario using any other kind is rejected.
SUPPORTED_KINDS = ("link_drop",)


@dataclass(frozen=True)
class FaultWindow:
    """One merged fault window of one device.

    Attributes:
        kind: Fault kind (``"link_drop"``).
        device_id: Device id as in the results columns, e.g. ``depot_ac3``.
        index: Index of the device in its kind's arrays (charger fleet order).
        start_s: First simulated second of the fault [s], a step start.
        end_s: First simulated second after it [s], a step start (or the horizon).
    """

    kind: str
    device_id: str
    index: int
    start_s: int
    end_s: int


class FaultPlan:
    """The resolved fault windows of a run.

    Args:
        windows: Merged windows (at most one per device and kind covering any instant).
        n_chargers: Chargers of the site.
    """

    def __init__(self, windows: list[FaultWindow], n_chargers: int) -> None:
        self.windows = tuple(sorted(windows, key=lambda w: (w.start_s, w.kind, w.index)))
        self.n_chargers = n_chargers
        self._starts: dict[int, list[FaultWindow]] = {}
        self._ends: dict[int, list[FaultWindow]] = {}
        for window in self.windows:
            self._starts.setdefault(window.start_s, []).append(window)
            self._ends.setdefault(window.end_s, []).append(window)
        self._link_windows = [w for w in self.windows if w.kind == "link_drop"]

    def __bool__(self) -> bool:
        return bool(self.windows)

    def starting(self, t_s: int) -> list[FaultWindow]:
        """Windows that begin at ``t_s``."""
        return self._starts.get(t_s, [])

    def ending(self, t_s: int) -> list[FaultWindow]:
        """Windows that end at ``t_s``."""
        return self._ends.get(t_s, [])

    def links_down(self, t_s: int) -> np.ndarray:
        """Per charger, whether its link is down at ``t_s`` (bool array)."""
        down = np.zeros(self.n_chargers, dtype=bool)
        for window in self._link_windows:
            if window.start_s <= t_s < window.end_s:
                down[window.index] = True
        return down


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _on_grid(t_s: int, step_s: int) -> int:
    return -(-t_s // step_s) * step_s


def _unknown(device_id: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(device_id, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(known[:6]) + (", ..." if len(known) > 6 else "")
    return f"unknown {what} id {device_id!r}{hint} (the site's {what}s: {listed or 'none'})"


def _chargers_of(
    spec: LinkDropSpec, path: str, site: SiteModel, rng: np.random.Generator
) -> tuple[list[int], list[ConfigIssue]]:
    ids = list(site.fleet.ids)
    if isinstance(spec.devices, DeviceFraction):
        if not ids:
            return [], [ConfigIssue(f"{path}.devices", "the site has no chargers to drop")]
        k = max(1, round(spec.devices.fraction * len(ids)))
        return sorted(int(i) for i in rng.choice(len(ids), size=k, replace=False)), []
    issues: list[ConfigIssue] = []
    chosen: list[int] = []
    other = set(site.batteries.ids) | set(site.pv_ids)
    for n, device_id in enumerate(spec.devices):
        if device_id in ids:
            chosen.append(ids.index(device_id))
        elif device_id in other:
            issues.append(
                ConfigIssue(
                    f"{path}.devices[{n}]",
                    f"link_drop on {device_id!r} (a battery or PV plant) is not supported yet; "
                    "link_drop takes charger ids",
                )
            )
        else:
            issues.append(ConfigIssue(f"{path}.devices[{n}]", _unknown(device_id, ids, "charger")))
    if not spec.devices:
        issues.append(ConfigIssue(f"{path}.devices", "give at least one charger id"))
    return sorted(set(chosen)), issues


def plan_faults(site: SiteModel) -> FaultPlan:
    """Resolve the scenario's ``faults:`` into windows on the step grid.

    Device fractions are drawn from ``site.rng.generator("faults")``.

    Raises:
        ScenarioError: naming each entry (``faults[i]``) with an unknown device id or a kind
            that is not supported yet.
    """
    spec = site.scenario.spec
    step_s = site.clock.step_s
    horizon_s = site.clock.duration_s
    rng = site.rng.generator("faults")
    issues: list[ConfigIssue] = []
    spans: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for n, fault in enumerate(spec.faults):
        path = f"faults[{n}]"
        if fault.kind not in SUPPORTED_KINDS:
            issues.append(
                ConfigIssue(
                    f"{path}.kind",
                    f"fault kind {fault.kind!r} is not supported yet; supported: "
                    f"{', '.join(SUPPORTED_KINDS)}",
                )
            )
            continue
        assert isinstance(fault, LinkDropSpec)
        chargers, found = _chargers_of(fault, path, site, rng)
        issues += found
        for r in range(fault.count):
            start = fault.at + r * (fault.repeat_every or 0)
            end = horizon_s if fault.duration is None else start + fault.duration
            start, end = _on_grid(start, step_s), min(_on_grid(end, step_s), horizon_s)
            if start >= horizon_s or end <= start:
                continue
            for i in chargers:
                spans.setdefault((fault.kind, i), []).append((start, end))
    if issues:
        raise ScenarioError(issues, site.scenario.name)
    windows = [
        FaultWindow(kind, site.fleet.ids[i], i, start, end)
        for (kind, i), device_spans in spans.items()
        for start, end in _merge(device_spans)
    ]
    return FaultPlan(windows, site.fleet.n)


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
    kept: list[tuple[int, float | None]] = []
    withheld = False
    for i, limit in changes.chargers:
        if down[i]:
            # The device still holds its old value; remembering that as "sent" re-sends later.
            router._charger_sent[i] = router.devices.charger_requested_kw[i]
            withheld = True
        else:
            kept.append((i, limit))
    if withheld:
        router._raw[0] = None  # the same controller array must be compared again next cycle
        router.sent -= len(changes.chargers) - len(kept)
    changes.chargers = kept
    return changes if len(changes) else None


class FaultedSimulation(Simulation):
    """``mode: fast`` with the scenario's faults (setpoints withheld from unreachable chargers).

    Setpoints go straight to the devices (no L4 coordination), as in ``wire`` mode. Fault
    windows are logged as ``fault_start`` / ``fault_end`` events.
    """

    def __init__(self, site: SiteModel, *args: Any, **kwargs: Any) -> None:
        super().__init__(site, *args, **kwargs)
        self.faults = plan_faults(site)

    def _step(self, k: int) -> None:
        log_fault_transitions(self, self.faults, k * self.dt)
        super()._step(k)

    def _apply_setpoints(self, setpoints: Setpoints) -> Setpoints:
        changes = self.router.changes(
            setpoints.charger_kw, setpoints.battery_kw, setpoints.pv_limit_kw
        )
        changes = withhold_unreachable(
            changes, self.faults.links_down(self.engine.now_s), self.router
        )
        if changes is not None:
            router = self.router
            for i, limit in changes.chargers:
                router.charger_links[i].set_power_limit(limit)
            for j, p_kw in changes.batteries:
                router.battery_links[j].set_power_limit(p_kw)
            for j, cap in changes.pv:
                router.pv_links[j].set_power_limit(cap)
        return self._held


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
