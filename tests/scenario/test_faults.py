"""The ``faults:`` section: validation, fault windows, and link drops over real sockets.

The central claim: a wire run with repeated disconnects of a third of the chargers loses and
double-counts nothing — every transaction's energy at the CSMS equals what the twins metered,
to the Wh — and the link drop changes no physics: the dropped chargers charge on at the limit
they hold, exactly as the ``fast`` run with the same faults computes.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.control.base import Observation, SiteInfo
from qubit_sim.control.builtin import RuleBased
from qubit_sim.core.clock import parse_duration
from qubit_sim.core.rng import RngTree
from qubit_sim.errors import ScenarioError
from qubit_sim.protocols.ocpp_common import sim_to_iso
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.faults import FaultedSimulation, plan_faults
from qubit_sim.scenario.loader import load_scenario_text
from qubit_sim.scenario.schema import LinkDropSpec
from qubit_sim.scenario.simulation import Simulation
from qubit_sim.scenario.wire import WireSimulation

ROOT = Path(__file__).resolve().parents[2]
DEPOT = (ROOT / "scenarios" / "depot_overnight.yaml").read_text()
HOURS = 9  # long enough for vans to leave in the morning: finished transactions
STORM = """
faults:
  - {kind: link_drop, devices: {fraction: 0.33}, at: 30min, duration: 25min, repeat_every: 1h,
     count: 8}
"""


class SteppedCaps(RuleBased):
    """Charger caps that alternate between 40 % and 100 % of the rating every 15 minutes.

    Open loop (the caps depend on time only), so one charger's fault cannot change another's
    setpoints, and every quarter hour each charger has a new setpoint to (not) receive.
    """

    name = "stepped_caps"

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        self.rated = np.asarray(site.charger_max_kw, dtype=float)

    def act(self, obs: Observation) -> Any:
        setpoints = super().act(obs)
        setpoints.charger_kw = self.rated * cap_share(obs.t_s)
        return setpoints


def cap_share(t_s: int) -> float:
    return 0.4 if (t_s // 900) % 2 else 1.0


def _loaded(faults: str) -> Any:
    return load_scenario_text(DEPOT + faults, base_dir=ROOT / "scenarios")


def _site(faults: str, hours: float = 1.0) -> Any:
    return build_site(_loaded(faults), until_s=int(hours * 3600), controller=SteppedCaps())


def _with_faults(site: Any, faults: str, seed: int = 1) -> Any:
    """``site`` (built once: the feeder is slow to build) with another faults section."""
    scenario = copy.copy(site.scenario)
    object.__setattr__(scenario, "spec", _loaded(faults).spec)
    return dataclasses.replace(site, scenario=scenario, rng=RngTree(seed))


@pytest.fixture(scope="module")
def storm() -> dict[str, Any]:
    """The depot with a disconnect storm: plain fast, fast with faults, and wire."""
    runs: dict[str, Any] = {}
    for name, cls, faults in (
        ("plain", Simulation, ""),
        ("fast", FaultedSimulation, STORM),
        ("wire", WireSimulation, STORM),
    ):
        sim = cls(_site(faults, HOURS))
        sim.run()
        runs[name] = sim
    return runs


# --------------------------------------------------------------------------- the storm


def test_the_storm_drops_a_third_of_the_chargers_repeatedly(storm: dict[str, Any]) -> None:
    wire: WireSimulation = storm["wire"]
    plan = wire.faults
    dropped = sorted({w.index for w in plan.windows})
    assert len(dropped) == round(0.33 * wire.fleet.n) == 7
    starts = sorted({w.start_s for w in plan.windows})
    assert starts == [1800 + 3600 * r for r in range(8)]
    assert all(w.end_s - w.start_s == 1500 for w in plan.windows)
    assert wire.csms is not None
    for i, cp_id in enumerate(wire.fleet.ids):
        record = wire.csms.state.charge_points[cp_id]
        # Every drop is a real new websocket; the charge point boots only once.
        assert record.connects == (1 + 8 if i in dropped else 1)
        assert record.boots == 1
        twin = wire.twins[i]
        assert twin.queued == 0  # everything queued offline was delivered
        if i in dropped:
            # Refused attempts during the window: the back-off ran against a real 503.
            assert len(twin.attempts) > 8
    starts_logged = [e for e in wire.events if e["type"] == "fault_start"]
    assert len(starts_logged) == len(plan.windows)
    assert {e["device_id"] for e in starts_logged} == {wire.fleet.ids[i] for i in dropped}


def test_no_transaction_energy_is_lost_or_counted_twice(storm: dict[str, Any]) -> None:
    wire: WireSimulation = storm["wire"]
    assert wire.csms is not None
    dropped = {w.device_id for w in wire.faults.windows}
    records = {(tx.cp_id, tx.start_time): tx for tx in wire.csms.state.transactions.values()}
    plugged = np.flatnonzero(wire.session_plugged_s >= 0)
    assert len(records) == len(plugged) > 0
    finished_on_dropped = 0
    start = wire.site.clock.start
    for s in plugged:
        cp_id = wire.fleet.ids[wire.session_charger[s]]
        tx = records[(cp_id, sim_to_iso(start, int(wire.session_plugged_s[s])))]
        sim_wh = int(wire.session_meter_stop_wh[s] - wire.session_meter_start_wh[s])
        assert sim_wh > 0 and tx.meter_start_wh == wire.session_meter_start_wh[s]
        if wire.session_unplugged_s[s] >= 0:
            assert not tx.active and tx.energy_wh == sim_wh
            finished_on_dropped += cp_id in dropped
        else:
            assert tx.active and tx.energy_wh is not None and abs(tx.energy_wh - sim_wh) < 1.0
    assert finished_on_dropped > 0
    # The twins' own meters agree with the CSMS, transaction by transaction.
    twin_wh = sorted(
        (twin.identity, int(np.floor(d.meter_stop_wh) - np.floor(d.meter_start_wh)))
        for twin in wire.twins
        for d in twin.finished
        if d.meter_stop_wh is not None
    )
    csms_wh = sorted((tx.cp_id, tx.energy_wh) for tx in records.values() if not tx.active)
    assert twin_wh == csms_wh


def test_meter_values_sent_offline_arrive_in_order_and_none_is_lost(
    storm: dict[str, Any],
) -> None:
    wire: WireSimulation = storm["wire"]
    assert wire.csms is not None
    start = wire.site.clock.start
    horizon = wire.site.clock.duration_s
    checked = 0
    for tx in wire.csms.state.transactions.values():
        stamps = list(tx.samples)  # arrival order
        assert stamps == sorted(stamps)
        registers = [s.energy_wh for s in tx.samples.values() if s.energy_wh is not None]
        assert registers == sorted(registers)
        tx_start = parse_iso_s(tx.start_time, wire)
        tx_stop = horizon if tx.stop_time is None else parse_iso_s(tx.stop_time, wire)
        for window in wire.faults.windows:
            if window.device_id != tx.cp_id:
                continue
            # One meter value per minute of the transaction, also those queued while offline.
            for t in range(max(window.start_s, tx_start + 60), min(window.end_s, tx_stop), 60):
                assert sim_to_iso(start, t) in tx.samples
                checked += 1
    assert checked > 0


def parse_iso_s(iso: str, sim: Simulation) -> int:
    stamp = pd.Timestamp(iso)
    return int((stamp - pd.Timestamp(sim.site.clock.start)).total_seconds())


def test_fast_and_wire_agree_under_faults(storm: dict[str, Any]) -> None:
    fast, wire = storm["fast"], storm["wire"]
    frame_fast, frame_wire = fast.recorder.frame(), wire.recorder.frame()
    assert frame_fast.equals(frame_wire)
    assert [e for e in fast.events if e["type"].startswith("fault")] == [
        e for e in wire.events if e["type"].startswith("fault")
    ]


def test_a_dropped_charger_charges_on_at_the_limit_it_holds(storm: dict[str, Any]) -> None:
    plain, fast = storm["plain"], storm["fast"]
    with_faults, without = fast.recorder.frame(), plain.recorder.frame()
    dropped = {w.index for w in fast.faults.windows}
    for i, cp_id in enumerate(fast.fleet.ids):
        column = f"charger_{cp_id}_p_kw"
        if i not in dropped:
            # Faults elsewhere change nothing here (the controller is open loop).
            assert np.array_equal(with_faults[column].to_numpy(), without[column].to_numpy())
    changed = charging = 0
    dt = fast.dt
    rated = fast.site.fleet.rated_kw
    for window in fast.faults.windows:
        column = f"charger_{window.device_id}_p_kw"
        rows = slice(window.start_s // dt, window.end_s // dt)
        held_kw = rated[window.index] * cap_share(window.start_s - dt)
        p_kw = with_faults[column].to_numpy()[rows]
        connected = with_faults[f"charger_{window.device_id}_connected"].to_numpy()[rows]
        # Charging continues while offline, never above the held limit.
        assert np.all(p_kw <= held_kw + 1e-9)
        charging += bool(connected.all() and np.all(p_kw > 0.0))
        changed += not np.array_equal(p_kw, without[column].to_numpy()[rows])
    assert charging > 0  # EVs kept charging through whole windows offline
    assert changed > 0  # withholding the new setpoints made a difference


# ------------------------------------------------------------------------- validation


def test_faults_parse_with_durations_and_fraction() -> None:
    spec = _loaded(STORM).spec
    (fault,) = spec.faults
    assert fault.kind == "link_drop" and fault.devices.fraction == 0.33  # type: ignore[union-attr]
    assert (fault.at, fault.duration, fault.repeat_every, fault.count) == (1800, 1500, 3600, 8)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "{kind: link_drop, devices: [depot_ac1], duration: 1h, repeat_every: 10min, count: 2}",
            "repeat_every",
        ),
        ("{kind: link_drop, devices: [depot_ac1], duration: 1h, count: 3}", "repeat_every"),
        ("{kind: link_drop, devices: {fraction: 1.5}, duration: 1h}", "fraction"),
        ("{kind: link_drop, devices: [depot_ac1], duration: soon}", "duration"),
        ("{kind: link_flap, devices: [depot_ac1]}", "kind"),
        ("{kind: link_drop, devices: [depot_ac1], duraton: 1h}", "duraton"),
    ],
)
def test_invalid_fault_entries_are_rejected(
    assert_fault_entry_rejected: Callable[..., None], entry: str, expected: str
) -> None:
    assert_fault_entry_rejected(_loaded, entry, expected)


def test_an_unknown_charger_id_names_the_closest_one(depot_site: Any) -> None:
    entry = "{kind: link_drop, devices: [depot_ac01], duration: 1h}"
    with pytest.raises(ScenarioError) as info:
        _loaded(f"faults:\n  - {entry}\n")
    (issue,) = info.value.issues
    assert issue.path == "faults[0].devices[0]"
    assert issue.line == DEPOT.count("\n") + 2
    assert "depot_ac01" in issue.message and "did you mean 'depot_ac1'" in issue.message
    # A spec that did not come through the loader is checked again when the faults are planned.
    fault = LinkDropSpec(kind="link_drop", devices=["depot_ac01"], duration=3600)
    spec = depot_site.scenario.spec.model_copy(update={"faults": [fault]})
    scenario = copy.copy(depot_site.scenario)
    object.__setattr__(scenario, "spec", spec)
    with pytest.raises(ScenarioError) as planned:
        plan_faults(dataclasses.replace(depot_site, scenario=scenario))
    (again,) = planned.value.issues
    assert (again.path, again.message) == (issue.path, issue.message)


@pytest.mark.parametrize(
    "entry",
    [
        "{kind: latency, devices: [depot_ac1], delay: 2s}",
        "{kind: message_loss, devices: {fraction: 0.5}, probability: 0.05}",
        "{kind: device_fault, device: depot_ac1, at: 1h, duration: 10min}",
        "{kind: meter_freeze, device: depot_ac1, at: 1h, duration: 10min}",
    ],
)
def test_every_kind_is_planned_on_the_chargers_it_names(entry: str, depot_site: Any) -> None:
    plan = plan_faults(_with_faults(depot_site, f"faults:\n  - {entry}\n"))
    kind = entry.split(",")[0].split(": ")[1]
    assert plan.windows and {w.kind for w in plan.windows} == {kind}
    assert {w.device_kind for w in plan.windows} == {"charger"}
    if kind == "message_loss":
        n = depot_site.fleet.n
        assert len(plan.windows) == max(1, round(0.5 * n)) and n > 2
        assert all(w.value == 0.05 for w in plan.windows)
    if kind == "latency":
        assert [w.value for w in plan.windows] == [2.0]


def test_the_fraction_draw_follows_the_seed(depot_site: Any) -> None:
    faults = "faults:\n  - {kind: link_drop, devices: {fraction: 0.33}, duration: 10min}\n"
    draws = [
        tuple(w.index for w in plan_faults(_with_faults(depot_site, faults, seed)).windows)
        for seed in (1, 1, 2)
    ]
    assert draws[0] == draws[1] and len(draws[0]) == 7
    assert draws[0] != draws[2]


@settings(max_examples=60, deadline=None)
@given(
    at=st.integers(0, 7200),
    duration=st.integers(1, 3000),
    gap=st.integers(0, 3000),
    count=st.integers(1, 5),
)
def test_windows_lie_on_the_step_grid_inside_the_horizon_and_never_overlap(
    at: int, duration: int, gap: int, count: int, depot_site: Any
) -> None:
    entries = (
        f"  - {{kind: link_drop, devices: [depot_ac2, depot_dc1], at: {at}, "
        f"duration: {duration}, repeat_every: {duration + gap}, count: {count}}}\n"
        f"  - {{kind: link_drop, devices: [depot_ac2], at: {at + duration // 2}, duration: 600}}\n"
    )
    site = _with_faults(depot_site, "faults:\n" + entries)
    plan = plan_faults(site)
    step, horizon = site.clock.step_s, site.clock.duration_s
    by_device: dict[int, list[tuple[int, int]]] = {}
    for w in plan.windows:
        assert w.start_s % step == 0 and (w.end_s % step == 0 or w.end_s == horizon)
        assert 0 <= w.start_s < w.end_s <= horizon
        by_device.setdefault(w.index, []).append((w.start_s, w.end_s))
    for spans in by_device.values():
        spans.sort()
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))
    # Down exactly inside some window: every instant of the grid agrees with the windows.
    for t in range(0, horizon, step * 7):
        down = plan.links_down(t)
        for i in (1, 20):
            inside = any(s <= t < e for s, e in by_device.get(i, []))
            assert down[i] == inside
    assert parse_duration(duration) == duration


@pytest.fixture(scope="module")
def depot_site() -> Any:
    return _site("", hours=3)


def test_the_runner_applies_faults_in_fast_mode(tmp_path: Path) -> None:
    from qubit_sim.scenario import runner
    from qubit_sim.scenario.faults import FaultedSimulation

    assert runner._simulation_class("fast", True) is FaultedSimulation
    assert runner._simulation_class("fast", False) is not FaultedSimulation
