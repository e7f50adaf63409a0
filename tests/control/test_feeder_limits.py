"""Feeder limits in the LP controllers: ``feeder_limits`` keeps a site that overloads its feeder
within the transformer's rating and the voltage band, linearised from the feeder's own power flow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qubit_sim
from qubit_sim.control.registry import make_controller
from qubit_sim.control.stack_feeder import MONITORED_LINES, feeder_constraint
from qubit_sim.errors import ControllerError, SimulationError
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.loader import load_scenario_text

# Twenty 22 kW depot chargers on the 160 kVA rural LV feeder: charging at once overloads it.
DEPOT = """\
site:
  name: depot_lv
  location: {lat: 52.37, lon: 4.90, tz: Europe/Amsterdam}
  start: 2025-01-13T00:00:00Z
  duration: 1d
  step: 60s
  seed: 1
grid:
  network: 1-LV-rural1--0-sw
  site_bus: LV1.101 Bus 5
assets:
  chargers:
    - {template: ac_22kw, count: 20, id: cp}
evs:
  population: {behaviour: depot, vehicles: 20}
tariff:
  energy_rates:
    - {name: night, rate: 0.15, start_time: "00:00", end_time: "06:59"}
    - {name: day, rate: 0.30, start_time: "07:00", end_time: "22:59"}
    - {name: late, rate: 0.15, start_time: "23:00", end_time: "23:59"}
controller: {name: uncontrolled}
"""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("feeder") / "depot_lv.yaml"
    path.write_text(DEPOT)
    return path


@pytest.mark.parametrize("name", ["mpc", "offline_optimal"])
def test_feeder_limits_remove_the_overloads_the_controller_causes(
    scenario: Path, tmp_path: Path, name: str
) -> None:
    kpis = {}
    for limits in (False, True):
        run = qubit_sim.run(
            scenario,
            out=tmp_path / f"{name}-{limits}",
            controller=name,
            controller_params={"feeder_limits": limits},
            plots=False,
            settle=False,
        )
        kpis[limits] = run.kpis
    assert kpis[False]["overload_steps"] > 0 and kpis[False]["max_trafo_loading_pct"] > 110
    assert kpis[True]["overload_steps"] == 0 and kpis[True]["voltage_violation_steps"] == 0
    assert kpis[True]["max_trafo_loading_pct"] <= 100.0
    # Not by leaving the cars empty: at most a few kWh more unmet than without the limits.
    assert kpis[True]["ev_energy_unmet_kwh"] <= kpis[False]["ev_energy_unmet_kwh"] + 5.0


def test_the_constraint_is_linearised_from_the_feeders_power_flow(scenario: Path) -> None:
    from qubit_sim.grid import FastPowerFlow

    site = build_site(qubit_sim.load_scenario(scenario))
    grid = site.grid
    limits = feeder_constraint(grid, 96, 900, 60, 100.0, 0.05, "mpc")
    n_trafo = len(grid.net.trafo)
    # Every transformer, the most moved lines, the site bus voltage.
    assert n_trafo + 1 < limits.n_constraints <= n_trafo + MONITORED_LINES + 1
    assert limits.base.shape == (limits.n_constraints, 96)
    np.testing.assert_allclose(limits.upper[:n_trafo], 95.0)
    assert limits.lower[-1] == pytest.approx(0.95 + 0.05 * 0.05)
    assert limits.upper[-1] == pytest.approx(1.05 - 0.05 * 0.05)
    # Importing raises the transformer's loading and lowers the site's voltage.
    assert np.all(limits.sensitivity_per_kw[:n_trafo] > 0)
    assert limits.sensitivity_per_kw[-1] < 0
    # The base of slot 40 is the feeder solved at that slot's first step with the site idle.
    flow = FastPowerFlow(grid.net, grid.site_buses)
    k = 40 * 900 // 60
    bg = grid.background
    idle = flow.solve(
        np.zeros(1),
        load_p_mw=bg.load_p_mw[k],
        load_q_mvar=bg.load_q_mvar[k],
        sgen_p_mw=bg.sgen_p_mw[k],
    )
    assert limits.base[0, 40] == pytest.approx(idle.trafo_loading_pct[0])
    assert limits.base[-1, 40] == pytest.approx(idle.vm_pu[grid.site_bus_index_in_results])


def test_feeder_limits_need_a_feeder_and_a_sane_margin(tmp_path: Path) -> None:
    no_grid = DEPOT.replace(
        "grid:\n  network: 1-LV-rural1--0-sw\n  site_bus: LV1.101 Bus 5\n", ""
    )
    loaded = load_scenario_text(no_grid, base_dir=tmp_path)
    with pytest.raises((ControllerError, SimulationError), match="feeder_limits needs a scenario"):
        qubit_sim.run(
            loaded,
            out=tmp_path / "x",
            controller="mpc",
            controller_params={"feeder_limits": True},
            until_s=3600,
            plots=False,
            settle=False,
        )
    with pytest.raises(ControllerError, match="feeder_margin = 0.9 must be within"):
        feeder_constraint(object(), 4, 900, 60, 100.0, 0.9, "mpc")
    assert make_controller("mpc", {"feeder_limits": True}).feeder_limits is True
