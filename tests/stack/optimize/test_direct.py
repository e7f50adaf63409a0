"""The MPC's direct HiGHS path against the cvxpy reference model: the same LP, the same optimum."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qubit_sim.stack.optimize.mpc as mpc_module
from qubit_sim.stack.optimize import (
    LinearGridConstraint,
    MpcOptimizer,
    OptimizationError,
    evaluate_plan,
    offline_optimal,
)
from qubit_sim.stack.optimize.direct import solve_direct
from qubit_sim.stack.optimize.lp import EvLayout, build_site_lp, lp_coefficients

HORIZON = 16
MAX_EVS = 6


@pytest.fixture(scope="module")
def reference() -> MpcOptimizer:
    return MpcOptimizer(
        HORIZON, MAX_EVS, True, n_grid_constraints=2, max_billing_periods=2, method="dpp"
    )


def _grid(rng: np.random.Generator, n_slots: int) -> LinearGridConstraint:
    # A voltage-like quantity that drops with import, and a loading-like one that rises with it.
    base = np.vstack([rng.uniform(0.99, 1.01, n_slots), rng.uniform(20, 40, n_slots)])
    return LinearGridConstraint(base, [-0.0008, 0.6], [0.95, 0.0], [1.05, 80.0])


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_slots=st.integers(1, HORIZON),
    n_ev=st.integers(0, MAX_EVS),
    battery=st.booleans(),
    with_grid=st.booleans(),
    cut=st.integers(0, HORIZON),
)
def test_direct_equals_the_cvxpy_model(
    opt, reference, seed, n_slots, n_ev, battery, with_grid, cut
):
    rng = np.random.default_rng(seed)
    problem = opt.random_problem(rng, n_slots=n_slots, n_ev=n_ev, battery=battery, slot_s=900)
    problem = replace(problem, billing_period=(np.arange(n_slots) >= cut).astype(int))
    grid = _grid(rng, n_slots) if with_grid else None
    direct = solve_direct(problem, grid)
    expected = reference.solve(problem, grid)
    opt.assert_feasible(problem, direct.plan)
    scored = evaluate_plan(problem, direct.plan, grid).total
    assert opt.rel_diff(scored, expected.objective.total) < 1e-6


def test_lp_value_equals_the_cvxpy_value(opt):
    # Same coefficients, same model: the solver's objective values agree, not only the scores.
    rng = np.random.default_rng(5)
    problem = opt.random_problem(rng, n_slots=24, n_ev=8, slot_s=900, import_max_kw=50.0)
    layout = EvLayout.available(problem.availability() & (problem.evs.p_max_kw[:, None] > 0))
    lp = build_site_lp(layout, True, 0, lp_coefficients(problem, layout, True))
    lp.problem.solve(solver="HIGHS")
    direct = solve_direct(problem)
    assert opt.rel_diff(direct.objective, float(lp.problem.value)) < 1e-7


def test_absent_evs_have_no_variables(opt):
    rng = np.random.default_rng(8)
    problem = opt.random_problem(rng, n_slots=24, n_ev=8, slot_s=900)
    present = int((problem.availability() & (problem.evs.p_max_kw[:, None] > 0)).sum())
    none = solve_direct(replace(problem, evs=replace(problem.evs, p_max_kw=np.zeros(8))))
    full = solve_direct(problem)
    # Two columns (power, cumulative energy) per present (session, slot); nothing for the rest.
    assert full.n_columns - none.n_columns == 2 * present < 2 * 8 * 24
    assert full.taper_rows <= present


def test_rejected_option_is_an_error(opt):
    problem = opt.random_problem(np.random.default_rng(1), n_slots=4, n_ev=1)
    with pytest.raises(OptimizationError, match="rejected option"):
        solve_direct(problem, options={"not_an_option": 1})


def test_direct_failure_falls_back_to_the_cvxpy_model(opt, monkeypatch):
    problem = opt.random_problem(np.random.default_rng(2), n_slots=8, n_ev=2)

    def fail(*args, **kwargs):
        raise OptimizationError("HiGHS returned Time limit reached")

    monkeypatch.setattr(mpc_module, "solve_direct", fail)
    result = MpcOptimizer(8, 2, True).solve(problem)
    assert result.solver == "CLARABEL"
    assert "Time limit" in result.fallback_reason
    assert opt.rel_diff(result.objective.total, offline_optimal(problem).objective.total) < 1e-5
    with pytest.raises(OptimizationError, match="Time limit"):
        MpcOptimizer(8, 2, True, fallback_solver=None).solve(problem)


def test_method_is_checked():
    with pytest.raises(OptimizationError, match="'direct' or 'dpp'"):
        MpcOptimizer(4, 1, False, method="fast")
    # Any other primary solver goes through the cvxpy model.
    assert MpcOptimizer(4, 1, False, solver="CLARABEL").method == "dpp"


def test_scaling_option_changes_the_path_not_the_optimum(opt):
    # The default max-value scaling and HiGHS's own default reach the same optimum.
    rng = np.random.default_rng(11)
    problem = opt.random_problem(rng, n_slots=16, n_ev=6, slot_s=900)
    tuned = solve_direct(problem)
    plain = solve_direct(problem, options={"simplex_scale_strategy": 1})
    assert tuned.simplex_iterations > 0 and plain.simplex_iterations > 0
    assert opt.rel_diff(tuned.objective, plain.objective) < 1e-7
    opt.assert_feasible(problem, tuned.plan)


@pytest.mark.parametrize("seed", [3, 4])
def test_deep_taper_sessions_reach_the_reference_optimum(opt, reference, seed):
    # Every session plugged in all horizon and asking for more than fits below the knee (up to a
    # full battery, or beyond): the regime where the taper rows bind in most slots, and where the
    # delivered-energy chain carries only the final cap.
    rng = np.random.default_rng(seed)
    problem = opt.random_problem(rng, n_slots=HORIZON, n_ev=MAX_EVS, slot_s=900)
    evs = problem.evs
    room = (1.0 - 0.45) * evs.capacity_kwh
    evs = replace(
        evs,
        arrival_slot=np.zeros(MAX_EVS, dtype=np.int64),
        departure_slot=np.full(MAX_EVS, HORIZON, dtype=np.int64),
        knee_soc=np.full(MAX_EVS, 0.5),
        soc0=np.full(MAX_EVS, 0.45),
        e_needed_kwh=room * rng.uniform(0.9, 1.3, MAX_EVS),
    )
    problem = replace(problem, evs=evs, weights=replace(problem.weights, demand_charge_per_kw=8.0))
    direct = solve_direct(problem)
    expected = reference.solve(problem)
    opt.assert_feasible(problem, direct.plan)
    assert direct.taper_rows > MAX_EVS * HORIZON // 2
    assert opt.rel_diff(evaluate_plan(problem, direct.plan).total, expected.objective.total) < 1e-6


def test_stating_the_implied_energy_bounds_changes_nothing_but_the_path(opt):
    for seed in range(4):
        problem = opt.random_problem(np.random.default_rng(20 + seed), n_slots=16, n_ev=6)
        free = solve_direct(problem)
        bounded = solve_direct(problem, implied_bounds=True)
        assert opt.rel_diff(free.objective, bounded.objective) < 1e-7
        assert (free.n_columns, free.n_rows) == (bounded.n_columns, bounded.n_rows)
        opt.assert_feasible(problem, free.plan)
