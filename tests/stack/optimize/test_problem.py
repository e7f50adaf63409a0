"""Problem validation, the public API, and import hygiene."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import qubit_sim.stack.optimize as optimize
from qubit_sim.errors import ControllerError, QubitSimError
from qubit_sim.stack.optimize import (
    BatteryParams,
    EvSessions,
    LinearGridConstraint,
    ObjectiveWeights,
    OptimizationError,
)


def _evs(**overrides):
    base = dict(
        ev_ids=("a", "b"),
        arrival_slot=[-1, 2],
        departure_slot=[3, 9],
        e_needed_kwh=[10.0, 5.0],
        soc0=[0.2, 0.5],
        capacity_kwh=[50.0, 60.0],
        p_max_kw=[11.0, 7.4],
        knee_soc=[0.8, 1.0],
        charger_efficiency=[0.9, 0.95],
        priority=[1, 3],
    )
    base.update(overrides)
    return EvSessions(**base)


def test_exported_members():
    assert sorted(optimize.__all__) == sorted(
        [
            "BatteryParams",
            "EvSessions",
            "GreedyResult",
            "IntraSlot",
            "LinearGridConstraint",
            "MpcOptimizer",
            "ObjectiveTerms",
            "ObjectiveWeights",
            "OptimizationError",
            "OptimizationResult",
            "PeakShavingResult",
            "Plan",
            "SiteProblem",
            "auto_peak_target_kw",
            "evaluate_plan",
            "greedy_schedule",
            "offline_optimal",
            "peak_shaving",
            "qubit_baseline_plan",
            "schedule_frame",
            "site_power_kw",
        ]
    )
    for name in optimize.__all__:
        assert getattr(optimize, name) is not None


def test_cvxpy_is_imported_only_for_the_lp():
    code = (
        "import sys, qubit_sim.stack.optimize as o\n"
        "assert 'cvxpy' not in sys.modules, 'eager cvxpy import'\n"
        "o.MpcOptimizer\n"
        "assert 'cvxpy' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_error_hierarchy():
    assert issubclass(OptimizationError, ControllerError)
    assert issubclass(OptimizationError, QubitSimError)


def test_availability_clips_to_horizon():
    avail = _evs().availability(5)
    np.testing.assert_array_equal(avail[0], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(avail[1], [0, 0, 1, 1, 1])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"soc0": [1.2, 0.5]}, r"EV 'a': soc0 = 1.2 must be in \[0, 1\]"),
        ({"charger_efficiency": [0.9, 0.0]}, "EV 'b': charger_efficiency = 0.0"),
        ({"departure_slot": [3, 1]}, "EV 'b': departure_slot = 1 must be >= arrival_slot"),
        ({"priority": [0, 1]}, "priority = 0 must be >= 1"),
        ({"ev_ids": ("a", "a")}, "ev_ids must be unique"),
        ({"p_max_kw": [11.0]}, "p_max_kw has 1 entries; expected 2"),
        ({"e_needed_kwh": [np.nan, 1.0]}, "e_needed_kwh.0. = nan is not finite"),
    ],
)
def test_ev_validation_names_value(overrides, message):
    with pytest.raises(OptimizationError, match=message):
        _evs(**overrides)


def test_battery_validation():
    with pytest.raises(OptimizationError, match="eta_charge = 1.5"):
        BatteryParams(100, 10, 10, eta_charge=1.5)
    with pytest.raises(OptimizationError, match="SOC window"):
        BatteryParams(100, 10, 10, soc_min=0.9, soc_max=0.1)
    battery = BatteryParams(100, 10, 10, soc_min=0.2, soc_max=0.8, soc0=0.1)
    assert battery.e_bounds_kwh == (10.0, 80.0)


def test_site_validation(opt):
    with pytest.raises(OptimizationError, match=r"export_price_per_kwh\[1\] = 0.3 exceeds"):
        opt.build_problem(price=np.array([0.2, 0.2]), export_price=np.array([0.1, 0.3]))
    with pytest.raises(OptimizationError, match=r"load_kw\[0\] = -1.0 must be >= 0"):
        opt.build_problem(price=np.array([0.2]), load=np.array([-1.0]))
    with pytest.raises(OptimizationError, match="pv_kw has 3 entries; expected 2"):
        opt.build_problem(price=np.array([0.2, 0.2]), pv=np.zeros(3))
    problem = opt.build_problem(price=np.array([0.2]))
    with pytest.raises(OptimizationError, match="tz-aware UTC"):
        type(problem)(
            slot_s=900,
            times_utc=problem.times_utc.tz_localize(None),
            price_per_kwh=[0.2],
            export_price_per_kwh=[0.0],
            carbon_g_per_kwh=[0.0],
            load_kw=[0.0],
            pv_kw=[0.0],
            import_max_kw=1.0,
            export_max_kw=1.0,
        )
    with pytest.raises(OptimizationError, match="unmet_penalty_per_kwh = -1"):
        ObjectiveWeights(unmet_penalty_per_kwh=-1)


def test_inputs_are_copied_and_frozen():
    needs = np.array([10.0, 5.0])
    evs = _evs(e_needed_kwh=needs)
    needs[0] = 99.0
    assert evs.e_needed_kwh[0] == 10.0
    with pytest.raises(ValueError):
        evs.e_needed_kwh[0] = 1.0


def test_grid_constraint_violation():
    grid = LinearGridConstraint(
        base=np.array([[1.0, 1.0]]), sensitivity_per_kw=[-0.001], lower=[0.95], upper=[1.05]
    )
    np.testing.assert_allclose(grid.violation(np.array([40.0, 70.0])), [[0.0, 0.02]])
    with pytest.raises(OptimizationError, match="lower 1.1 exceeds upper 1.0"):
        LinearGridConstraint(np.ones((1, 2)), [0.0], [1.1], [1.0])
