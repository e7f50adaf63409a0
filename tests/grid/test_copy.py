"""Copies of a power flow solve as the original does.

The solver writes through views into its buffers (voltages, mismatch, step statistics). A deep
copy or a pickle must rebuild those views over its own buffers: copied as detached arrays, the
copy's Newton updates never reached its voltages and it diverged. Claims checked: a deep copy
taken before or between steps continues bit-identically with the original (dense inverse and
sparse LU), a pickled one too, the copy shares no buffer with the original, and a deep-copied
site runs to the same time series as the site itself.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from qubit_sim.grid import FastPowerFlow
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.loader import load_scenario_text
from qubit_sim.scenario.simulation import GRID_COLUMNS, Simulation


def _site_powers(n_steps: int, n_site: int) -> np.ndarray:
    rng = np.random.default_rng(11)
    return rng.uniform(-60.0, 120.0, size=(n_steps, n_site))


def _run_steps(flow: FastPowerFlow, site_p_kw: np.ndarray) -> list[tuple[Any, np.ndarray]]:
    injection = flow.injections()
    out = []
    for row in site_p_kw:
        vm = np.empty(len(flow.bus_index))
        summary = flow.step(injection, np.ascontiguousarray(row), vm)
        out.append((summary, vm))
    return out


def _assert_identical(a: list[tuple[Any, np.ndarray]], b: list[tuple[Any, np.ndarray]]) -> None:
    assert len(a) == len(b)
    for (summary_a, vm_a), (summary_b, vm_b) in zip(a, b, strict=True):
        assert summary_a.converged and summary_b.converged
        assert summary_a == summary_b
        np.testing.assert_array_equal(vm_a, vm_b)


@pytest.mark.parametrize("linear_solver", ["dense", "sparse"])
def test_a_deep_copy_between_steps_continues_like_the_original(
    mv_net_shared: Any, linear_solver: str
) -> None:
    buses = mv_net_shared.bus.index[[5, 40]].tolist()
    flow = FastPowerFlow(mv_net_shared, buses, linear_solver=linear_solver)
    powers = _site_powers(12, 2)
    _run_steps(flow, powers[:4])  # a warm start and a kept Jacobian (inverse or LU) to copy
    twin = copy.deepcopy(flow)
    _assert_identical(_run_steps(flow, powers[4:]), _run_steps(twin, powers[4:]))


def test_a_deep_copy_before_any_step_solves_like_a_fresh_power_flow(lv_net_shared: Any) -> None:
    bus = lv_net_shared.bus.index[4]
    powers = _site_powers(8, 1)
    fresh = FastPowerFlow(lv_net_shared, [bus])
    twin = copy.deepcopy(FastPowerFlow(lv_net_shared, [bus]))
    _assert_identical(_run_steps(fresh, powers), _run_steps(twin, powers))
    result = twin.solve(np.array([50.0]))
    reference = FastPowerFlow(lv_net_shared, [bus]).solve(np.array([50.0]))
    assert result.converged
    np.testing.assert_allclose(result.vm_pu, reference.vm_pu, rtol=0, atol=1e-9)


def test_a_copy_shares_no_buffer_with_the_original(lv_net_shared: Any) -> None:
    flow = FastPowerFlow(lv_net_shared, [lv_net_shared.bus.index[4]])
    _run_steps(flow, _site_powers(2, 1))
    twin = copy.deepcopy(flow)
    for name, value in vars(flow).items():
        if isinstance(value, np.ndarray) and value.size:
            assert not np.shares_memory(value, getattr(twin, name)), name
    assert not np.shares_memory(flow._newton.v, twin._newton.v)
    # The copy's views look into its own buffers.
    assert np.shares_memory(twin._vm_int, twin._vm_pad)
    assert np.shares_memory(twin._stats_vm, twin._stats)
    assert np.shares_memory(twin._newton._fixed[1], twin._newton.v)
    before = flow._newton.v.copy()
    _run_steps(twin, _site_powers(3, 1) * 2)
    np.testing.assert_array_equal(flow._newton.v, before)


@pytest.mark.parametrize("linear_solver", ["dense", "sparse"])
def test_a_pickled_power_flow_solves_like_the_original(
    mv_net_shared: Any, linear_solver: str
) -> None:
    buses = [mv_net_shared.bus.index[12]]
    flow = FastPowerFlow(mv_net_shared, buses, linear_solver=linear_solver)
    powers = _site_powers(8, 1)
    _run_steps(flow, powers[:3])
    restored = pickle.loads(pickle.dumps(flow))
    after, again = _run_steps(flow, powers[3:]), _run_steps(restored, powers[3:])
    if linear_solver == "dense":
        _assert_identical(after, again)
    else:
        # A sparse LU does not pickle: the restored solver factorises again, and every step
        # still iterates to the tolerance.
        for (summary_a, vm_a), (summary_b, vm_b) in zip(after, again, strict=True):
            assert summary_b.converged
            np.testing.assert_allclose(vm_b, vm_a, rtol=0, atol=1e-9)
            assert abs(summary_b.ext_grid_p_kw - summary_a.ext_grid_p_kw) < 1e-3


SITE = """
site:
  name: copied_site
  start: 2025-06-02T06:00:00Z
  duration: 8h
  step: 15min
  seed: 3
grid:
  network: 1-LV-rural1--0-sw
  site_bus: LV1.101 Bus 4
  background: true
  power_flow: true
assets:
  chargers:
    - {power_kw: 22, count: 4, buses: [LV1.101 Bus 4, LV1.101 Bus 7]}
  batteries:
    - {capacity_kwh: 60, power_kw: 30}
  pv:
    - {kwp: 40}
  loads:
    - {profile: G1-A, annual_kwh: 40000}
evs:
  population: {behaviour: workplace, vehicles: 6}
controller:
  name: rule_based
  params: {threshold_kw: 40}
"""


def test_a_deep_copied_site_runs_to_the_same_time_series() -> None:
    site = build_site(load_scenario_text(SITE))
    twin = copy.deepcopy(site)
    original = Simulation(site)
    original.run()
    copied = Simulation(twin)
    copied.run()
    a, b = original.recorder.frame(), copied.recorder.frame()
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # The power flow ran and saw the site: voltages were solved, not left at NaN.
    grid = a[GRID_COLUMNS].to_numpy(dtype=float)
    assert np.isfinite(grid).all()
    assert a["grid_vm_min_pu"].min() < a["grid_vm_max_pu"].max()
