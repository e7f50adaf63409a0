"""Qubit L4 coordination inside a run: commands, retries, timeouts, cancellation, events.

The workplace scenario (10 chargers, one battery, PV) runs with ``mpc`` for 12 h: every charger
gets 0 kW at 00:00, EVs arrive from 05:00 and get non-zero limits from 09:00; the battery charges,
then discharges. Runs are shared by the module's tests.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from qubit_sim.control import make_controller
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.coordination import (
    Coordinator,
    FailingLink,
    SilentLink,
    battery_asset_id,
    charger_asset_id,
)
from qubit_sim.scenario.loader import load_scenario
from qubit_sim.scenario.simulation import Simulation
from qubit_sim.stack.coordinate import CoordinatorConfig, DeviceLink, EventType

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "workplace_pv_battery.yaml"
HOURS = 12
BATTERY = battery_asset_id("office_battery")
L4_TYPES = {t.value for t in EventType}


@pytest.fixture(scope="module")
def loaded() -> Any:
    return load_scenario(SCENARIO)


def _run(
    loaded: Any,
    folder: Path,
    hours: int = HOURS,
    controller: str = "mpc",
    **options: Any,
) -> tuple[Simulation, pd.DataFrame, list[dict[str, Any]]]:
    site = build_site(loaded, until_s=hours * 3600, controller=make_controller(controller))
    sim = Simulation(site, events_path=folder / "events.jsonl", **options)
    sim.run()
    lines = (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return sim, sim.recorder.frame(), [json.loads(line) for line in lines]


def _faults(asset_id: str, link: DeviceLink) -> DeviceLink:
    if asset_id.startswith("ast_charger_"):
        return FailingLink(link, failures=2, skip=1)  # t=0 answered, then 2 refusals
    if asset_id == BATTERY:
        return SilentLink(link, answered=1)  # the t=0 setpoint lands, then silence
    return link


@pytest.fixture(scope="module")
def runs(loaded: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, options in (
        ("direct", {"coordination": False}),
        ("l4", {}),
        ("faulty", {"link_wrapper": _faults}),
    ):
        out[name] = _run(loaded, tmp_path_factory.mktemp(name), **options)
    return out


def _of(events: list[dict[str, Any]], asset_id: str, kind: str | None = None) -> list[dict]:
    return [
        e for e in events if e.get("asset_id") == asset_id and (kind is None or e["type"] == kind)
    ]


def test_stack_controllers_declare_coordination() -> None:
    for name in ("qubit_greedy", "mpc", "offline_optimal"):
        assert make_controller(name).uses_coordination is True
    for name in ("uncontrolled", "rule_based"):
        assert not getattr(make_controller(name), "uses_coordination", False)


def test_all_succeeding_commands_give_the_direct_path_results(runs: dict[str, Any]) -> None:
    direct_sim, direct, direct_events = runs["direct"]
    sim, frame, events = runs["l4"]
    assert direct_sim.coordinator is None and isinstance(sim.coordinator, Coordinator)
    pd.testing.assert_frame_equal(direct, frame, check_exact=True)
    np.testing.assert_array_equal(direct_sim.session_delivered_kwh, sim.session_delivered_kwh)
    # The L4 run only adds coordination events; the EV events are the same.
    assert [e for e in events if e["type"] not in L4_TYPES] == direct_events
    counts = sim.coordinator.state_counts()
    assert counts["COMPLETED"] > 20
    assert counts["COMPLETED"] == sum(counts.values())
    assert sim.coordinator.wakeups == 0  # nothing outstanding: no coordination events at all
    kinds = Counter(e["type"] for e in events)
    for kind in ("CREATED", "DISPATCHED", "ACKNOWLEDGED", "COMPLETED"):
        assert kinds[f"COMMAND_{kind}"] == counts["COMPLETED"]
    assert kinds["STATE_CHANGED"] > 0


def test_events_are_time_ordered_records(runs: dict[str, Any]) -> None:
    for name in ("l4", "faulty"):
        events = runs[name][2]
        times = [e["t_s"] for e in events]
        assert times == sorted(times)
        for e in events:
            if e["type"] in L4_TYPES:
                assert set(e) == {"t_s", "time", "type", "asset_id", "data"}
                assert e["time"].endswith("Z")


def test_commands_follow_the_setpoints(runs: dict[str, Any]) -> None:
    sim, frame, events = runs["l4"]
    first_ev = next(
        e
        for e in events
        if e["type"] == "COMMAND_COMPLETED"
        and e["asset_id"].startswith("ast_charger_")
        and e["data"]["value_kw"] > 0
    )
    assert first_ev["data"]["command_type"] == "SET_CHARGE_RATE"
    charger = first_ev["asset_id"].removeprefix("ast_charger_")
    row = frame.iloc[first_ev["t_s"] // 60]
    assert 0 < row[f"charger_{charger}_p_kw"] <= first_ev["data"]["value_kw"] + 1e-9
    battery = _of(events, BATTERY, "COMMAND_COMPLETED")
    types = [e["data"]["command_type"] for e in battery]
    # The battery flips from charging to discharging: the documented pair at one instant.
    flip = types.index("SET_DISCHARGE_RATE")
    assert types[flip - 1] == "SET_CHARGE_RATE" and battery[flip - 1]["data"]["value_kw"] == 0
    assert battery[flip - 1]["t_s"] == battery[flip]["t_s"]
    states = [e["data"]["to_state"] for e in _of(events, BATTERY, "STATE_CHANGED")]
    assert states[0] == "CHARGING" and "DISCHARGING" in states
    assert all(a != b for a, b in zip(states, states[1:], strict=False))
    charger_states = [
        e["data"]["to_state"] for e in _of(events, first_ev["asset_id"], "STATE_CHANGED")
    ]
    assert charger_states[:2] == ["PREPARING", "CHARGING"]


def test_failing_charger_links_are_retried_with_backoff(runs: dict[str, Any]) -> None:
    sim, frame, events = runs["faulty"]
    checked = 0
    for charger in sim.fleet.ids:
        asset_id = charger_asset_id(charger)
        mine = [e for e in _of(events, asset_id) if e["type"].startswith("COMMAND_")]
        created = [e for e in mine if e["type"] == "COMMAND_CREATED"]
        if len(created) < 2:
            continue  # this charger got only the 0 kW of t=0 (answered by the link)
        checked += 1
        second = created[1]
        t0, command_id = second["t_s"], second["data"]["command_id"]
        trail = [(e["t_s"] - t0, e["type"]) for e in mine if e["data"]["command_id"] == command_id]
        assert trail == [
            (0, "COMMAND_CREATED"),
            (0, "COMMAND_DISPATCHED"),
            (0, "COMMAND_FAILED"),
            (5, "COMMAND_DISPATCHED"),  # first retry 5 s later
            (5, "COMMAND_FAILED"),
            (15, "COMMAND_DISPATCHED"),  # second retry 10 s after that
            (15, "COMMAND_ACKNOWLEDGED"),
            (15, "COMMAND_COMPLETED"),
        ]
        failed = [
            e for e in mine if e["data"]["command_id"] == command_id and "FAILED" in e["type"]
        ]
        assert [e["data"]["final"] for e in failed] == [False, False]
        assert [e["data"]["next_attempt_at"] for e in failed] == [
            sim.site.clock.iso(t0 + 5),
            sim.site.clock.iso(t0 + 15),
        ]
        if second["data"]["value_kw"] > 0.5 and t0 // 60 + 1 < len(frame):
            # The step at t0 ran on the old limit (0 kW), the next one on the new limit.
            k = t0 // 60
            column = f"charger_{charger}_p_kw"
            assert frame[column].iloc[k] == 0
            assert frame[column].iloc[k + 1] > 0
    assert checked >= 3


def test_silent_battery_link_times_out_and_keeps_the_old_setpoint(
    runs: dict[str, Any],
) -> None:
    _, clean, _ = runs["l4"]
    sim, frame, events = runs["faulty"]
    mine = [e for e in _of(events, BATTERY) if e["type"].startswith("COMMAND_")]
    created = [e for e in mine if e["type"] == "COMMAND_CREATED"]
    t0, second = created[1]["t_s"], created[1]["data"]["command_id"]
    trail = [
        (e["t_s"] - t0, e["type"], e["data"]["final"])
        for e in mine
        if e["data"]["command_id"] == second
    ]
    assert trail == [
        (0, "COMMAND_CREATED", False),
        (0, "COMMAND_DISPATCHED", False),
        (30, "COMMAND_TIMED_OUT", False),  # retry 5 s after the 30-s deadline
        (35, "COMMAND_DISPATCHED", False),
        (65, "COMMAND_TIMED_OUT", False),  # retry 10 s after
        (75, "COMMAND_DISPATCHED", False),
        (105, "COMMAND_TIMED_OUT", False),  # retry 20 s after
        (125, "COMMAND_DISPATCHED", False),
        (155, "COMMAND_TIMED_OUT", True),
    ]
    last = [e for e in mine if e["data"]["command_id"] == second][-1]
    assert last["data"]["state"] == "TIMED_OUT" and last["data"]["attempts"] == 4
    counts = sim.coordinator.state_counts()
    assert counts["TIMED_OUT"] >= 5 and counts["PENDING"] + counts["DISPATCHED"] <= 2
    # The battery keeps the first (answered) setpoint while the new one is not applied.
    held = frame["battery_p_kw"].iloc[created[0]["t_s"] // 60]
    assert held == pytest.approx(created[0]["data"]["value_kw"], abs=1e-3) and held > 0
    asked = created[1]["data"]["value_kw"]
    if created[1]["data"]["command_type"] == "SET_DISCHARGE_RATE":
        asked = -asked
    assert asked != held
    k = t0 // 60
    window = frame["battery_p_kw"].iloc[k : k + 4]  # t0 .. past the final timeout
    np.testing.assert_array_equal(window.to_numpy(), np.full(len(window), held))
    # It never gets a later setpoint, so it never discharges, unlike the run without faults.
    assert (frame["battery_p_kw"] >= 0).all() and (clean["battery_p_kw"] < 0).any()
    assert sim.devices.battery_setpoint_kw[0] == held
    # Retries and timeouts woke the coordinator only while commands were outstanding.
    assert 0 < sim.coordinator.wakeups < 20 * HOURS * 4


def test_departure_cancels_the_chargers_unfinished_commands(loaded: Any, tmp_path: Path) -> None:
    config = CoordinatorConfig(site_id="sit_workplace", command_timeout_seconds=3600)

    def silent_chargers(asset_id: str, link: DeviceLink) -> DeviceLink:
        return SilentLink(link, answered=1) if asset_id.startswith("ast_charger_") else link

    sim, _, events = _run(
        loaded, tmp_path, hours=13, link_wrapper=silent_chargers, coordinator_config=config
    )
    unplugs = [e for e in events if e["type"] == "ev_unplugged"]
    assert unplugs, "the window must hold a departure"
    cancelled = [
        e
        for e in events
        if e["type"] == "COMMAND_FAILED"
        and e["data"]["state"] == "CANCELLED"
        and "unplugged" in (e["data"]["error"] or "")
    ]
    assert cancelled
    for leaving in unplugs:
        asset_id = charger_asset_id(leaving["charger_id"])
        mine = [e for e in cancelled if e["asset_id"] == asset_id]
        assert mine and all(e["t_s"] == leaving["t_s"] for e in mine)
        state = _of(events, asset_id, "STATE_CHANGED")
        assert any(
            e["t_s"] == leaving["t_s"] and e["data"]["to_state"] == "AVAILABLE" for e in state
        )
        assert not sim.coordinator.dispatch.ledger.active(asset_id)


def test_wire_runs_coordinate_over_the_protocol_links(loaded: Any) -> None:
    from qubit_sim.scenario.wire import WireSimulation
    from qubit_sim.scenario.wire_links import ModbusL4Link, OcppL4Link

    site = build_site(loaded, until_s=3600, controller=make_controller("mpc"))
    sim = WireSimulation(site)
    try:
        assert isinstance(sim.coordinator, Coordinator)
        assert isinstance(sim.coordinator.links.get(BATTERY), ModbusL4Link)
        charger = charger_asset_id(str(sim.fleet.ids[0]))
        assert isinstance(sim.coordinator.links.get(charger), OcppL4Link)
    finally:
        sim.close()
    rules = build_site(loaded, until_s=3600, controller=make_controller("rule_based"))
    plain = WireSimulation(rules)
    try:
        assert plain.coordinator is None  # only coordinating controllers go through L4
    finally:
        plain.close()
