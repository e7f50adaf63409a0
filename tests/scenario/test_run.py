"""End-to-end runs of the shipped scenarios: results folder, golden KPIs, reproducibility."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qubit_sim
from qubit_sim.core.results import RunResult
from qubit_sim.errors import ScenarioError

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
GOLDEN = Path(__file__).parent / "golden"
REQUIRED_KPIS = [
    "energy_cost", "demand_charge", "total_cost", "grid_import_kwh", "grid_export_kwh",
    "peak_import_kw", "ev_energy_delivered_kwh", "ev_energy_unmet_kwh", "pv_energy_kwh",
    "pv_self_consumption_ratio", "battery_throughput_kwh", "co2_kg", "voltage_violation_steps",
    "overload_steps", "min_voltage_pu", "max_line_loading_pct", "energy_balance_error_kwh",
]


@pytest.fixture(scope="module", params=SCENARIOS, ids=lambda p: p.stem)
def full_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """Each shipped scenario at its full length (a week)."""
    out = tmp_path_factory.mktemp(request.param.stem)
    return qubit_sim.run(request.param, out=out)


def test_results_folder_is_complete(full_run: RunResult) -> None:
    folder = full_run.out_dir
    for name in ("manifest.json", "scenario.yaml", "timeseries.parquet", "kpis.json",
                 "events.jsonl", "sessions.parquet"):
        assert (folder / name).is_file(), name
    pngs = {p.name for p in (folder / "plots").glob("*.png")}
    assert {"site_power.png", "chargers.png", "voltage.png"} <= pngs
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["steps_done"] == manifest["n_steps"] == 7 * 24 * 60
    assert manifest["versions"]["pandapower"] and manifest["seed"] >= 0
    kpis = json.loads((folder / "kpis.json").read_text())
    assert set(REQUIRED_KPIS) <= set(kpis)
    df = full_run.timeseries()
    assert len(df) == manifest["n_steps"]
    assert df["time"].dt.tz is not None and str(df["time"].dt.tz) == "UTC"


def test_energy_is_conserved_at_the_site_meter(full_run: RunResult) -> None:
    assert full_run.kpis["energy_balance_error_kwh"] < 1e-6
    df = full_run.timeseries()
    parts = df["load_kw"] + df["ev_p_kw"] + df["battery_p_kw"] + df["pv_kw"]
    assert np.allclose(df["site_p_kw"], parts, atol=1e-9)
    assert np.allclose(df["site_p_kw"], df["grid_import_kw"] - df["grid_export_kw"], atol=1e-12)
    charger_cols = [c for c in df if c.startswith("charger_") and c.endswith("_p_kw")]
    assert np.allclose(df[charger_cols].sum(axis=1), df["ev_p_kw"], atol=1e-9)


def test_ev_sessions_never_exceed_their_need(full_run: RunResult) -> None:
    sessions = full_run.sessions()
    assert (sessions["e_delivered_kwh"] <= sessions["e_needed_kwh"] + 1e-9).all()
    assert (sessions["e_delivered_kwh"] >= 0).all()
    kpis = full_run.kpis
    assert kpis["ev_energy_delivered_kwh"] + kpis["ev_energy_unmet_kwh"] == pytest.approx(
        kpis["ev_energy_requested_kwh"], rel=1e-9
    )
    events = full_run.events()
    plugged = [e for e in events if e["type"] == "ev_plugged"]
    assert len(plugged) == int((sessions["plugged_s"] >= 0).sum())


def test_power_flow_results_are_physical(full_run: RunResult) -> None:
    df = full_run.timeseries()
    assert df["grid_vm_min_pu"].between(0.8, 1.2).all()
    assert (df["grid_vm_min_pu"] <= df["grid_vm_site_pu"] + 1e-12).all()
    assert (df["grid_vm_site_pu"] <= df["grid_vm_max_pu"] + 1e-12).all()
    assert (df["grid_losses_kw"] >= -1e-9).all()
    bus_cols = [c for c in df if c.startswith("bus_") and c.endswith("_vm_pu")]
    assert bus_cols and np.allclose(df[bus_cols].min(axis=1), df["grid_vm_min_pu"])


def _documented_event_types() -> set[str]:
    """The event types the README's results-folder table names for ``events.jsonl``."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    row = next(line for line in lines if line.startswith("| `events.jsonl`"))
    return set(re.findall(r"`([A-Za-z_]+)`", row))


def test_event_types_of_the_shipped_scenarios_are_documented(full_run: RunResult) -> None:
    seen = {event["type"] for event in full_run.events()}
    assert {"ev_plugged", "ev_unplugged"} <= seen
    assert seen <= _documented_event_types()


# Faults on the office car park's battery and chargers, for a stack controller's run.
FAULTS = [
    {"kind": "latency", "devices": ["office_battery", "office1"], "delay": "5min", "at": "1h",
     "duration": "2h"},
    {"kind": "message_loss", "devices": {"fraction": 0.5}, "probability": 0.5, "at": 0,
     "duration": "6h"},
    {"kind": "modbus_timeout", "device": "office_battery", "at": "2h", "duration": "30min"},
]  # fmt: skip


def test_event_types_of_stack_and_fault_runs_are_documented(tmp_path: Path) -> None:
    from qubit_sim.scenario.loader import load_scenario

    path = ROOT / "scenarios" / "workplace_pv_battery.yaml"
    seen: set[str] = set()
    for name, overrides in (("plain", None), ("faults", {"faults": FAULTS})):
        result = qubit_sim.run(
            load_scenario(path, overrides=overrides),
            seed=0,
            out=tmp_path / name,
            until_s=6 * 3600,
            controller="qubit_greedy",
            plots=False,
            settle=False,
        )
        seen |= {event["type"] for event in result.events()}
    assert {"ev_plugged", "COMMAND_CREATED", "COMMAND_COMPLETED", "STATE_CHANGED"} <= seen
    assert {"fault_start", "fault_end", "command_delayed", "command_lost"} <= seen
    assert seen <= _documented_event_types()


def _compare(actual: object, expected: object) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        return math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-9)
    return actual == expected


def test_kpis_match_golden_files(full_run: RunResult, request: pytest.FixtureRequest) -> None:
    """Stored KPIs of every shipped scenario; regenerate deliberately with --update-golden."""
    name = full_run.manifest["scenario"]
    path = GOLDEN / f"{name}.json"
    kpis = {k: v for k, v in full_run.kpis.items() if not k.endswith("solve_time_s")}
    if request.config.getoption("--update-golden") or not path.exists():
        if not request.config.getoption("--update-golden"):
            pytest.fail(f"no golden file {path.name}; run pytest --update-golden to create it")
        path.write_text(json.dumps(kpis, indent=2, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    mismatched = {
        key: (kpis.get(key), value)
        for key, value in expected.items()
        if not _compare(kpis.get(key), value)
    }
    assert not mismatched, f"KPIs differ from {path.name}: {mismatched}"


def test_same_seed_gives_identical_timeseries(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "workplace_pv_battery.yaml"
    first = qubit_sim.run(scenario, seed=11, out=tmp_path / "a", until_s=2 * 86400, plots=False)
    second = qubit_sim.run(scenario, seed=11, out=tmp_path / "b", until_s=2 * 86400, plots=False)
    other = qubit_sim.run(scenario, seed=12, out=tmp_path / "c", until_s=2 * 86400, plots=False)
    pd.testing.assert_frame_equal(first.timeseries(), second.timeseries(), check_exact=True)
    assert (tmp_path / "a" / "events.jsonl").read_bytes() == (
        tmp_path / "b" / "events.jsonl"
    ).read_bytes()
    assert first.kpis == second.kpis
    assert not first.timeseries()["ev_p_kw"].equals(other.timeseries()["ev_p_kw"])


def test_until_limits_the_run(tmp_path: Path) -> None:
    result = qubit_sim.run(
        ROOT / "scenarios" / "depot_overnight.yaml", out=tmp_path, until_s=3 * 3600, plots=False
    )
    assert result.manifest["n_steps"] == 180 and len(result.timeseries()) == 180


def test_overrides_change_a_value_of_the_file_for_one_run(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "workplace_pv_battery.yaml"
    base = qubit_sim.run(scenario, out=tmp_path / "a", until_s=86400, plots=False, settle=False)
    cut = qubit_sim.run(
        scenario,
        out=tmp_path / "b",
        until_s=86400,
        plots=False,
        settle=False,
        overrides={"site": {"grid_connection": {"import_kw": 80}}},
    )
    assert base.manifest["scenario"] == cut.manifest["scenario"]
    assert cut.kpis["import_limit_violation_steps"] > base.kpis["import_limit_violation_steps"]
    loaded = qubit_sim.load_scenario(scenario)
    with pytest.raises(ScenarioError, match="a loaded scenario takes no overrides"):
        qubit_sim.run(loaded, out=tmp_path / "c", overrides={"site": {"seed": 2}})
