"""The stack controllers' device state as L1 telemetry, and Qubit L4 over the wire.

Runs of the workplace scenario (10 chargers, one battery, PV) with ``qubit_greedy``:

* fast and wire runs through the public API give identical time series, KPIs and events, and every
  telemetry point is ``measured``;
* a fast run whose battery SoC stops arriving and whose charger meters freeze has those points
  flagged (not ``measured``) and the battery held at 0 kW while its state is unknown;
* a wire run in which one charge point rejects its profiles and the battery's Modbus server stops
  answering shows retries and FAILED / TIMED_OUT commands from the real protocols.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import qubit_sim
from qubit_sim.control import make_controller
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.coordination import battery_asset_id
from qubit_sim.scenario.loader import load_scenario
from qubit_sim.scenario.simulation import Simulation
from qubit_sim.scenario.telemetry import TelemetryGate, TwinMeters, attach_telemetry
from qubit_sim.scenario.wire import WireSimulation
from qubit_sim.scenario.wire_links import ModbusL4Link, OcppL4Link
from qubit_sim.stack.data.site_telemetry import RawReading

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "workplace_pv_battery.yaml"
BATTERY = battery_asset_id("office_battery")
SLOT_S = 900


def _events(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def loaded() -> Any:
    return load_scenario(SCENARIO)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """qubit_greedy for 12 h in both modes through the public API."""
    runs: dict[str, Any] = {}
    for mode in ("fast", "wire"):
        out = tmp_path_factory.mktemp(mode)
        runs[mode] = qubit_sim.run(
            SCENARIO,
            out=out,
            until_s=12 * 3600,
            controller="qubit_greedy",
            plots=False,
            settle=False,
            mode=mode,
        )
        runs[f"{mode}_events"] = _events(out)
    return runs


def test_fast_and_wire_stack_runs_are_identical(pair: dict[str, Any]) -> None:
    fast, wire = pair["fast"], pair["wire"]
    pd.testing.assert_frame_equal(fast.timeseries(), wire.timeseries(), check_exact=True)
    timing = {k for k in fast.kpis if "time" in k}
    assert {k: v for k, v in fast.kpis.items() if k not in timing} == {
        k: v for k, v in wire.kpis.items() if k not in timing
    }
    assert pair["fast_events"] == pair["wire_events"]


def test_every_point_is_measured_and_counted_in_the_manifest(pair: dict[str, Any]) -> None:
    for mode in ("fast", "wire"):
        counts = pair[mode].manifest["telemetry"]["points_by_quality"]
        # 48 control cycles x (battery W + SoC, one PV plant W) at least, plus charger meters.
        assert counts["measured"] >= 48 * 3
        assert counts["missing"] == counts["error"] == counts["estimated"] == 0
    assert not [e for e in pair["fast_events"] if e["type"] == "telemetry_flagged"]


def test_wire_commands_are_acknowledged_by_the_real_protocols(pair: dict[str, Any]) -> None:
    events = pair["wire_events"]
    kinds = Counter(e["type"] for e in events)
    assert kinds["COMMAND_CREATED"] > 10
    for kind in ("DISPATCHED", "ACKNOWLEDGED", "COMPLETED"):
        assert kinds[f"COMMAND_{kind}"] == kinds["COMMAND_CREATED"]
    assets = {e["asset_id"] for e in events if e["type"] == "COMMAND_COMPLETED"}
    assert BATTERY in assets and any(a.startswith("ast_charger_") for a in assets)


class _DroppingMeters:
    """The twins' meters, with the battery's SoC not arriving in ``[start_s, stop_s)``."""

    def __init__(self, inner: TwinMeters, start_s: int, stop_s: int) -> None:
        self.inner = inner
        self.start_s, self.stop_s = start_s, stop_s

    def read(self, now_s: int) -> list[RawReading]:
        readings = self.inner.read(now_s)
        if not self.start_s <= now_s < self.stop_s:
            return readings
        return [
            replace(r, value=None) if (r.asset_id, r.quantity) == (BATTERY, "soc") else r
            for r in readings
        ]


def _fast(loaded: Any, folder: Path, drop: tuple[int, int] | None, freeze_s: int | None) -> Any:
    site = build_site(loaded, until_s=12 * 3600, controller=make_controller("qubit_greedy"))
    sim = Simulation(site, events_path=folder / "events.jsonl")
    meters = TwinMeters(sim)
    gate = attach_telemetry(sim, _DroppingMeters(meters, *drop) if drop else meters)
    assert isinstance(gate, TelemetryGate) and sim.controller is gate
    if freeze_s is not None:
        for i in range(sim.fleet.n):
            sim.engine.at(freeze_s, lambda i=i: sim.devices.freeze_meter("charger", i, True))
    sim.run()
    return sim, gate, sim.recorder.frame(), _events(folder)


@pytest.fixture(scope="module")
def degraded(loaded: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same fast run with intact meters, then with a SoC gap and frozen charger meters.

    The gap starts at the first slot the intact run moves the battery, so the test can see it
    held.
    """
    base = _fast(loaded, tmp_path_factory.mktemp("intact"), None, None)
    battery_kw = base[2]["battery_office_battery_p_kw"].to_numpy()
    step_s = base[0].dt
    moving = np.flatnonzero(np.abs(battery_kw) > 1e-6) * step_s
    slots = sorted({int(t) // SLOT_S * SLOT_S for t in moving if t > 0})
    start = slots[0]
    drop = (start, start + 2 * SLOT_S)
    run = _fast(loaded, tmp_path_factory.mktemp("degraded"), drop, 10 * 3600 + 60)
    return {"base": base, "run": run, "drop": drop, "step_s": step_s}


def test_a_missing_battery_soc_is_flagged_and_the_battery_held(degraded: dict[str, Any]) -> None:
    sim, gate, frame, events = degraded["run"]
    start, stop = degraded["drop"]
    flagged = [
        e
        for e in events
        if e["type"] == "telemetry_flagged"
        and e["asset_id"] == BATTERY
        and e["data"]["quantity"] == "soc"
    ]
    assert [e["t_s"] for e in flagged] == [start, start + SLOT_S]
    assert all(e["data"]["quality"] == "missing" for e in flagged)
    assert all(e["data"]["fallback"] == "held_idle" for e in flagged)
    assert gate.validator.counts["missing"] == 2
    step_s = degraded["step_s"]
    battery = frame["battery_office_battery_p_kw"].to_numpy()
    held = battery[start // step_s : stop // step_s]
    base_battery = degraded["base"][2]["battery_office_battery_p_kw"].to_numpy()
    assert np.abs(base_battery[start // step_s : stop // step_s]).max() > 1e-6
    np.testing.assert_array_equal(held, 0.0)
    # Once the SoC arrives again the battery is dispatched again.
    assert gate.validator.counts["measured"] > 0 and np.abs(battery[stop // step_s :]).max() > 0


def test_a_frozen_charger_meter_is_flagged_not_measured(degraded: dict[str, Any]) -> None:
    _, gate, _, events = degraded["run"]
    frozen = [
        e
        for e in events
        if e["type"] == "telemetry_flagged"
        and e["asset_id"].startswith("ast_charger_")
        and "frozen_value" in e["data"]["flags"]
    ]
    assert frozen and all(e["data"]["quantity"] == "energy" for e in frozen)
    assert all(e["t_s"] > 10 * 3600 for e in frozen)
    assert gate.summary()["flags"]["frozen_value"] == len(frozen)
    _, base_gate, _, base_events = degraded["base"]
    assert base_gate.validator.summary()["error"] == 0
    assert not [e for e in base_events if e["type"] == "telemetry_flagged"]


class _WrongConnector(OcppL4Link):
    """Sends the charge point profiles for a connector it does not have: it answers Rejected."""

    def _ocpp(self) -> Any:
        return self.sim.csms.link(self.sim.fleet.ids[self.index], 9)


def test_rejected_and_unanswered_wire_commands_retry_then_fail(loaded: Any, tmp_path: Path) -> None:
    site = build_site(loaded, until_s=3 * 3600, controller=make_controller("qubit_greedy"))
    sim = WireSimulation(site, events_path=tmp_path / "events.jsonl", response_timeout_s=2.0)
    coordinator = sim.coordinator
    assert coordinator is not None
    assert isinstance(coordinator.links.get(BATTERY), ModbusL4Link)
    charger = coordinator.charger_ids[0]
    assert isinstance(coordinator.links.get(charger), OcppL4Link)
    coordinator.links.register(charger, _WrongConnector(sim, charger, 0), replace=True)
    attach_telemetry(sim)
    # The battery's SunSpec server goes away after the first step: nothing answers any more.
    sim.engine.at(60, lambda: sim._call(sim.servers[0].stop()))
    sim.run()
    events = _events(tmp_path)

    def of(asset: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in events if e["asset_id"] == asset and e["type"] == kind]

    refused = of(charger, "COMMAND_FAILED")
    config = coordinator.config
    assert len(refused) == config.max_retries + 1
    assert all(e["data"]["error"] == "Rejected" for e in refused)
    assert refused[-1]["data"]["state"] == "FAILED"
    sent = [e["t_s"] for e in of(charger, "COMMAND_DISPATCHED")]
    assert sent == [0, 5, 15, 35]  # back-off 5, 10, 20 s
    assert of(BATTERY, "COMMAND_COMPLETED")  # the t = 0 setpoint was written and answered
    timed_out = of(BATTERY, "COMMAND_TIMED_OUT")
    final = [e for e in timed_out if e["data"]["state"] == "TIMED_OUT"]
    assert final and all(e["data"]["attempts"] == config.max_retries + 1 for e in final)
    assert len(timed_out) == len(final) * (config.max_retries + 1)
    flagged = [e for e in events if e["type"] == "telemetry_flagged" and e["asset_id"] == BATTERY]
    assert flagged and all(e["data"]["quality"] == "missing" for e in flagged)
    counts = coordinator.state_counts()
    assert counts["FAILED"] == 1 and counts["TIMED_OUT"] == len(final)
