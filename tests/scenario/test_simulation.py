"""Site simulation invariants on small random sites (hypothesis), and failure handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qubit_sim
from qubit_sim.control import Controller, Observation, Setpoints
from qubit_sim.errors import ControllerError, SimulationError
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.loader import load_scenario_text
from qubit_sim.scenario.simulation import Simulation

ROOT = Path(__file__).resolve().parents[2]

TEMPLATE = """
site:
  name: prop
  start: 2025-05-05T00:00:00Z
  duration: 2d
  step: {step}
  seed: {seed}
  grid_connection: {{import_kw: 60}}
assets:
  chargers:
    - {{power_kw: {charger_kw}, count: {n_chargers}, kind: {kind}, efficiency: {eff}}}
  batteries:
    - {{capacity_kwh: {cap}, power_kw: {batt_kw}, soc_min: {soc_min}, soc_max: {soc_max},
        soc_initial: {soc_init}, eta_charge: {eta}, eta_discharge: {eta},
        self_discharge_per_h: {sd}}}
  pv:
    - {{kwp: {kwp}}}
  loads:
    - {{profile: G1-A, peak_kw: {load_kw}}}
evs:
  population: {{behaviour: {behaviour}, vehicles: {vehicles}}}
controller:
  name: {controller}
  period: {period}
"""


class RandomController(Controller):
    """Random setpoints, including infeasible ones, to stress the physics."""

    name = "random"

    def act(self, obs: Observation) -> Setpoints:
        n = len(obs.charger_connected)
        charger = self.rng.uniform(-5, 40, n)
        charger[self.rng.random(n) < 0.2] = np.nan
        return Setpoints(
            charger_kw=charger,
            battery_kw=self.rng.uniform(-200, 200, len(obs.battery_soc)),
            pv_limit_kw=self.rng.uniform(-1, 50, len(obs.pv_available_kw)),
        )


sites = st.fixed_dictionaries(
    {
        "step": st.sampled_from(["60s", "5min", "15min"]),
        "seed": st.integers(0, 1000),
        "charger_kw": st.sampled_from([7.4, 11, 22, 50]),
        "n_chargers": st.integers(1, 6),
        "kind": st.sampled_from(["ac", "dc"]),
        "eff": st.floats(0.85, 1.0),
        "cap": st.floats(5, 300),
        "batt_kw": st.floats(1, 150),
        "soc_min": st.floats(0.0, 0.3),
        "soc_max": st.floats(0.7, 1.0),
        "soc_init": st.floats(0.3, 0.7),
        "eta": st.floats(0.8, 1.0),
        "sd": st.floats(0, 0.01),
        "kwp": st.floats(1, 80),
        "load_kw": st.floats(1, 80),
        "behaviour": st.sampled_from(["workplace", "residential", "depot"]),
        "vehicles": st.integers(1, 10),
        "controller": st.sampled_from(["uncontrolled", "rule_based", f"{__name__}:RandomController"]),
        "period": st.sampled_from(["15min", "30min"]),
    }
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites)
def test_random_sites_keep_every_invariant(params: dict) -> None:
    loaded = load_scenario_text(TEMPLATE.format(**params), base_dir=ROOT / "scenarios")
    site = build_site(loaded)
    sim = Simulation(site)
    spec = loaded.spec.assets.batteries[0]
    socs = []
    step = sim._step

    def checked_step(k: int) -> None:
        step(k)
        socs.append(sim.bank.soc.copy())
        # An EV never gets more than it asked for, and its SOC never exceeds 1.
        assert (sim.fleet.e_needed_kwh >= -1e-9).all()
        assert (sim.fleet.soc <= 1 + 1e-12).all()

    sim.engine._step = checked_step
    sim.run()
    soc = np.array(socs)
    assert (soc >= spec.soc_min - 1e-12).all() and (soc <= spec.soc_max + 1e-12).all()
    balance = sim.energy_balance()
    assert abs(balance["error_kwh"]) < 1e-6
    needed = np.asarray(site.sessions.e_needed_kwh)
    assert (sim.session_delivered_kwh <= needed + 1e-9).all()
    df = sim.recorder.frame()
    assert (df["pv_kw"] <= 1e-12).all() and (-df["pv_kw"] <= df["pv_available_kw"] + 1e-9).all()
    battery_p = df["battery_p_kw"].to_numpy()
    assert (battery_p <= spec.p_charge_max_kw + 1e-9).all()
    assert (-battery_p <= spec.p_discharge_max_kw + 1e-9).all()
    charger_cols = [c for c in df if c.startswith("charger_") and c.endswith("_p_kw")]
    rated = float(loaded.spec.assets.chargers[0].power_kw)
    assert (df[charger_cols].to_numpy() <= rated + 1e-9).all()
    assert (df[charger_cols].to_numpy() >= 0).all()


class FailingController(Controller):
    name = "failing"

    def __init__(self, fail_at_s: int) -> None:
        self.fail_at_s = fail_at_s

    def act(self, obs: Observation) -> Setpoints:
        if obs.t_s >= self.fail_at_s:
            raise RuntimeError("controller exploded")
        n_pv = len(obs.pv_available_kw)
        return Setpoints.unlimited(len(obs.charger_connected), len(obs.battery_soc), n_pv)


def test_a_failed_run_keeps_what_it_simulated(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "workplace_pv_battery.yaml"
    with pytest.raises(SimulationError, match=r"t=7200 s \(2025-06-02T02:00:00Z\)") as info:
        qubit_sim.run(scenario, out=tmp_path, controller=FailingController(7200), plots=False)
    assert "marked incomplete" in str(info.value) and str(tmp_path) in str(info.value)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "incomplete"
    assert manifest["stopped_at"] == "2025-06-02T02:00:00Z"
    assert "controller exploded" in manifest["error"]
    df = pd.read_parquet(tmp_path / "timeseries.parquet")
    assert len(df) == 120 == manifest["steps_done"]
    assert json.loads((tmp_path / "kpis.json").read_text())["grid_import_kwh"] > 0


class WrongShapeController(Controller):
    name = "wrong_shape"

    def act(self, obs: Observation) -> Setpoints:
        return Setpoints(np.zeros(1), np.zeros(5), np.zeros(0))


def test_bad_setpoints_are_named(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "workplace_pv_battery.yaml"
    with pytest.raises(SimulationError, match=r"charger_kw of shape \(1,\); expected \(10,\)") as info:
        qubit_sim.run(scenario, out=tmp_path, controller=WrongShapeController(), plots=False)
    assert isinstance(info.value.__cause__, ControllerError)
