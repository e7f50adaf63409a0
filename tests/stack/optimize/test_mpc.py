"""The exact site LP (MPC and offline): feasibility under the stated physics, optimality against the
baselines, soft limits, DPP re-solves."""

from __future__ import annotations

import numpy as np
import pytest

from qubit_sim.stack.optimize import (
    BatteryParams,
    EvSessions,
    LinearGridConstraint,
    MpcOptimizer,
    ObjectiveWeights,
    OptimizationError,
    Plan,
    evaluate_plan,
    greedy_schedule,
    offline_optimal,
    qubit_baseline_plan,
)

HORIZON = 24
MAX_EVS = 8


@pytest.fixture(scope="module")
def mpc() -> MpcOptimizer:
    return MpcOptimizer(HORIZON, MAX_EVS, has_battery=True)


@pytest.mark.parametrize("seed", range(8))
def test_plan_feasible_and_no_worse_than_baselines(opt, mpc, seed):
    rng = np.random.default_rng(seed)
    problem = opt.random_problem(rng, n_slots=HORIZON, n_ev=int(rng.integers(0, MAX_EVS + 1)))
    result = mpc.solve(problem)
    assert result.status == "optimal" and result.solver == "HIGHS"
    sim = opt.assert_feasible(problem, result.plan)
    s = result.schedule
    np.testing.assert_allclose(s["net_load_kw"], sim.site_kw, atol=1e-9)
    np.testing.assert_allclose(s["battery_soc_kwh"], sim.battery_e_kwh, atol=1e-9)
    for i, ev_id in enumerate(problem.evs.ev_ids):
        np.testing.assert_allclose(s[f"ev_{ev_id}_kw"], result.plan.p_ev_kw[i])
    np.testing.assert_allclose(
        result.unmet_kwh.to_numpy(),
        np.maximum(problem.evs.e_needed_kwh - sim.delivered_kwh, 0),
        atol=1e-9,
    )
    # The same objective, evaluated on every plan: the LP optimum is a lower bound.
    best = result.objective.total
    baseline = evaluate_plan(problem, qubit_baseline_plan(problem)).total
    greedy_only = evaluate_plan(problem, greedy_schedule(problem).plan).total
    idle = evaluate_plan(problem, Plan.idle(problem)).total
    for other in (baseline, greedy_only, idle):
        assert best <= other + 1e-6 * max(1.0, abs(other))
    # The offline model (sparse layout, constants) is the same LP.
    assert opt.rel_diff(offline_optimal(problem).objective.total, best) < 1e-6


def test_dpp_resolve_matches_fresh_build(opt):
    dpp = MpcOptimizer(HORIZON, MAX_EVS, True, method="dpp")
    assert dpp.problem.is_dpp()
    rng = np.random.default_rng(42)
    problems = [opt.random_problem(rng, n_slots=HORIZON, n_ev=MAX_EVS) for _ in range(3)]
    reused = [dpp.solve(p).objective.total for p in problems]
    fresh = [
        MpcOptimizer(HORIZON, MAX_EVS, True, method="dpp").solve(p).objective.total
        for p in problems
    ]
    for a, b in zip(reused, fresh, strict=True):
        assert opt.rel_diff(a, b) < 1e-7
    assert len({round(v, 6) for v in reused}) == 3  # the data really changed between cycles


def test_shorter_problem_is_padded(opt, mpc):
    rng = np.random.default_rng(7)
    problem = opt.random_problem(rng, n_slots=10, n_ev=4)
    result = mpc.solve(problem)
    assert len(result.schedule) == 10
    opt.assert_feasible(problem, result.plan)
    assert opt.rel_diff(result.objective.total, offline_optimal(problem).objective.total) < 1e-6


def test_import_limit_impossible_is_relaxed_and_reported(opt):
    # Background load alone is twice the import limit: the plan exceeds it (never infeasible),
    # reports by how much, and does not add EV charging on top (the limit penalty dominates).
    evs = EvSessions(("a",), [0], [6], [20.0], [0.2], [60.0], [11.0], [0.9], [1.0], [1])
    problem = opt.build_problem(
        price=np.full(6, 0.2), load=np.full(6, 100.0), import_max_kw=50.0, evs=evs
    )
    for result in (MpcOptimizer(6, 2, has_battery=False).solve(problem), offline_optimal(problem)):
        assert result.status == "optimal"
        assert result.limits_relaxed
        assert result.objective.import_excess_kwh == pytest.approx(6 * 50.0, rel=1e-9)
        assert result.objective.limit_penalty == pytest.approx(300.0 * 1e4, rel=1e-9)
        np.testing.assert_allclose(result.plan.p_ev_kw, 0.0, atol=1e-7)
        assert result.unmet_kwh["a"] == pytest.approx(20.0)


def test_lp_taper_matches_hand_worked_maximum(opt):
    # Same EV as the greedy hand example: at most 10/3, 10/9, 10/27 kW can go in.
    evs = EvSessions(("t",), [0], [3], [10.0], [0.5], [10.0], [10.0], [0.5], [1.0], [1])
    problem = opt.build_problem(price=np.array([0.3, 0.2, 0.1]), evs=evs)
    result = offline_optimal(problem)
    np.testing.assert_allclose(result.plan.p_ev_kw[0], [10 / 3, 10 / 9, 10 / 27], rtol=1e-7)
    opt.assert_feasible(problem, result.plan, tol=1e-8)


def test_priority_scales_unmet_penalty(opt):
    evs = EvSessions(
        ("normal", "urgent"),
        [0, 0],
        [2, 2],
        [20.0, 20.0],
        [0.0, 0.0],
        [100.0, 100.0],
        [20.0, 20.0],
        [1.0, 1.0],
        [1.0, 1.0],
        [1, 3],
    )
    problem = opt.build_problem(price=np.full(2, 0.1), import_max_kw=15.0, evs=evs)
    result = MpcOptimizer(2, 2, False).solve(problem)
    assert result.unmet_kwh["urgent"] == pytest.approx(0.0, abs=1e-7)
    assert result.unmet_kwh["normal"] == pytest.approx(10.0)


def test_pv_curtailment_and_export_limit(opt):
    pv = np.array([0.0, 80.0, 80.0, 0.0])
    kwargs = dict(
        price=np.full(4, 0.2),
        export_price=np.full(4, 0.05),
        pv=pv,
        load=np.full(4, 10.0),
        export_max_kw=30.0,
    )
    allowed = offline_optimal(opt.build_problem(**kwargs))
    assert not allowed.limits_relaxed
    np.testing.assert_allclose(allowed.plan.pv_used_kw, [0, 40, 40, 0], atol=1e-7)
    forced = offline_optimal(opt.build_problem(**kwargs, pv_curtailment_allowed=False))
    np.testing.assert_allclose(forced.plan.pv_used_kw, pv)
    assert forced.objective.export_excess_kwh == pytest.approx(80.0)


def test_battery_starting_below_window_stays_feasible(opt):
    battery = BatteryParams(100.0, 20.0, 20.0, soc_min=0.2, soc_max=0.9, soc0=0.05)
    problem = opt.build_problem(
        price=np.array([0.3, 0.3, 0.1, 0.3]), load=np.array([50.0, 60, 10, 70]), battery=battery
    )
    result = MpcOptimizer(4, 0, True).solve(problem)
    sim = opt.assert_feasible(problem, result.plan)
    assert sim.battery_e_kwh.min() >= 5.0 - 1e-7


def test_grid_constraint_hook(opt):
    # Voltage falls 1 mV pu per kW of import; 0.95 pu lower bound -> site import <= 50 kW.
    evs = EvSessions(("a",), [0], [4], [200.0], [0.0], [500.0], [50.0], [1.0], [1.0], [1])
    problem = opt.build_problem(price=np.full(4, 0.1), load=np.full(4, 30.0), evs=evs)
    grid = LinearGridConstraint(
        base=np.ones((1, 4)), sensitivity_per_kw=[-0.001], lower=[0.95], upper=[1.05]
    )
    mpc = MpcOptimizer(4, 2, has_battery=False, n_grid_constraints=2)
    result = mpc.solve(problem, grid)
    np.testing.assert_allclose(result.schedule["net_load_kw"], 50.0, atol=1e-6)
    assert result.objective.grid_violation == pytest.approx(0.0, abs=1e-9)
    # Without the hook the same model is free to charge at 50 kW on top of the load.
    free = mpc.solve(problem)
    assert free.schedule["net_load_kw"].max() == pytest.approx(80.0)
    # An impossible bound (0.9 pu with the site idle) is relaxed and reported.
    bad = LinearGridConstraint(np.full((1, 4), 0.9), [-0.001], [0.95], [1.05])
    relaxed = mpc.solve(problem, bad)
    assert relaxed.status == "optimal" and relaxed.limits_relaxed
    assert relaxed.objective.grid_violation == pytest.approx(4 * 0.05 + 4 * 0.03, rel=1e-6)


def test_fallback_solver_is_used_and_reported(opt):
    rng = np.random.default_rng(3)
    problem = opt.random_problem(rng, n_slots=8, n_ev=2)
    result = MpcOptimizer(8, 2, True, solver="NOT_A_SOLVER").solve(problem)
    assert result.solver == "CLARABEL"
    assert "NOT_A_SOLVER" in result.fallback_reason
    opt.assert_feasible(problem, result.plan, tol=1e-5)
    reference = offline_optimal(problem).objective.total
    assert opt.rel_diff(result.objective.total, reference) < 1e-5
    with pytest.raises(OptimizationError, match="could not be solved"):
        MpcOptimizer(8, 2, True, solver="NOT_A_SOLVER", fallback_solver=None).solve(problem)


def test_model_size_errors(opt, mpc):
    rng = np.random.default_rng(0)
    with pytest.raises(OptimizationError, match="horizon_slots >= 30"):
        mpc.solve(opt.random_problem(rng, n_slots=30, n_ev=1))
    with pytest.raises(OptimizationError, match="max_evs = 8"):
        mpc.solve(opt.random_problem(rng, n_slots=HORIZON, n_ev=9))
    with pytest.raises(OptimizationError, match="has_battery=False"):
        MpcOptimizer(4, 1, False).solve(opt.random_problem(rng, n_slots=4, n_ev=1))


def test_solves_print_nothing(opt, mpc, capfd):
    rng = np.random.default_rng(5)
    problem = opt.random_problem(rng, n_slots=HORIZON, n_ev=3)
    mpc.solve(problem)
    offline_optimal(problem)
    out, _ = capfd.readouterr()
    assert out == ""


def test_terminal_value_rule(opt):
    battery = BatteryParams(100.0, 50.0, 50.0, eta_discharge=0.9, soc0=0.5)
    weights = ObjectiveWeights(cost_weight=2.0, carbon_weight=0.001)
    problem = opt.build_problem(
        price=np.array([0.1, 0.3]),
        carbon=np.array([100.0, 300.0]),
        battery=battery,
        weights=weights,
    )
    assert problem.terminal_value_per_kwh() == pytest.approx(0.9 * (2 * 0.2 + 0.001 * 200))
    # Charging 10 kW for one hour stores 9.5 kWh, valued at the rule and netted in the total.
    plan = Plan(np.zeros((0, 2)), np.array([10.0, 0.0]), np.zeros(2), np.zeros(2))
    terms = evaluate_plan(problem, plan)
    assert terms.terminal_value == pytest.approx(9.5 * problem.terminal_value_per_kwh())
    assert terms.total == pytest.approx(2 * 1.0 + 0.001 * 1000 - terms.terminal_value)
