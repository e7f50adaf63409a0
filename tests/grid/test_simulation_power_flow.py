"""The site simulation's power flow: what it records equals pandapower's runpp on its injections."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from qubit_sim.grid import runpp_reference
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.loader import load_scenario_text
from qubit_sim.scenario.simulation import GRID_COLUMNS, Simulation

SCENARIO = """
site:
  name: grid_glue
  start: 2025-06-02T00:00:00Z
  duration: 1d
  step: 15min
  seed: 4
grid:
  network: 1-LV-rural1--0-sw
  site_bus: LV1.101 Bus 4
  background: {background}
  power_flow: true
assets:
  chargers:
    - {{power_kw: 22, count: 6, buses: {charger_buses}}}
  batteries:
    - {{capacity_kwh: 60, power_kw: 30{battery_bus}}}
  pv:
    - {{kwp: 40, count: 2, buses: {pv_buses}}}
  loads:
    - {{profile: G1-A, annual_kwh: 40000}}
evs:
  population: {{behaviour: workplace, vehicles: 8}}
controller:
  name: rule_based
  params: {{threshold_kw: 60}}
"""

MULTI_BUS = {
    "background": "true",
    "charger_buses": "[LV1.101 Bus 4, LV1.101 Bus 7, LV1.101 Bus 12]",
    "battery_bus": ", bus: LV1.101 Bus 7",
    "pv_buses": "[LV1.101 Bus 12, LV1.101 Bus 9]",
}
ONE_BUS = {
    "background": "false",
    "charger_buses": "[LV1.101 Bus 4]",
    "battery_bus": "",
    "pv_buses": "[LV1.101 Bus 4]",
}


def _run(options: dict[str, str]) -> tuple[Any, Any]:
    site = build_site(load_scenario_text(SCENARIO.format(**options)))
    simulation = Simulation(site)
    simulation.run()
    return site, simulation.recorder.frame()


def _site_power_per_bus(site: Any, row: Any) -> np.ndarray:
    """Each site bus's power from the recorded device powers [kW], load convention."""
    parts = [
        (site.charger_site_bus, [f"charger_{i}_p_kw" for i in site.fleet.ids]),
        (site.battery_site_bus, [f"battery_{i}_p_kw" for i in site.batteries.ids]),
        (site.pv_site_bus, [f"pv_{i}_p_kw" for i in site.pv_ids]),
        (site.load_site_bus, [f"load_{i}_p_kw" for i in site.load_ids]),
    ]
    n_bus = len(site.grid.site_buses)
    return sum(
        np.bincount(positions, row[columns].to_numpy(dtype=float), minlength=n_bus)
        for positions, columns in parts
    )


@pytest.mark.parametrize("options", [MULTI_BUS, ONE_BUS], ids=["several_buses", "one_bus"])
def test_recorded_grid_columns_equal_runpp(options: dict[str, str]) -> None:
    site, frame = _run(options)
    grid = site.grid
    assert len(grid.site_buses) == (4 if options is MULTI_BUS else 1)
    bus_columns = [f"bus_{int(b)}_vm_pu" for b in grid.bus_index]
    reference_net = None
    # Steps with the EVs plugged in and PV running, and at night.
    for k in (8, 40, 47, 52, 70, 90):
        row = frame.iloc[k]
        background = grid.background
        inputs: dict[str, Any] = {}
        if background is not None:
            inputs = {
                "load_p_mw": background.load_p_mw[k],
                "load_q_mvar": background.load_q_mvar[k],
                "sgen_p_mw": background.sgen_p_mw[k],
            }
        site_kw = _site_power_per_bus(site, row)
        if reference_net is None:
            reference_net = copy.deepcopy(grid.net)
        ref = runpp_reference(reference_net, grid.site_buses, site_kw, **inputs, inplace=True)
        vm = row[bus_columns].to_numpy(dtype=float)
        np.testing.assert_allclose(vm, ref.vm_pu, rtol=0, atol=1e-6)
        expected = [
            ref.vm_pu.min(),
            ref.vm_pu.max(),
            ref.vm_pu[grid.site_bus_index_in_results],
            ref.line_loading_pct.max(),
            ref.trafo_loading_pct.max(),
            ref.losses_kw,
            ref.ext_grid_p_kw,
        ]
        tolerances = [1e-6, 1e-6, 1e-6, 1e-4, 1e-4, 1e-3, 1e-3]
        for name, value, tol in zip(GRID_COLUMNS, expected, tolerances, strict=True):
            assert row[name] == pytest.approx(value, abs=tol), (k, name)
    # The meter equals the sum over site buses, so the injection the power flow saw is the meter.
    totals = np.array([_site_power_per_bus(site, frame.iloc[k]).sum() for k in range(len(frame))])
    np.testing.assert_allclose(totals, frame["site_p_kw"].to_numpy(), rtol=0, atol=1e-9)
    assert frame["ev_p_kw"].max() > 10.0  # the steps above did see EV charging
