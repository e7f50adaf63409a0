"""The offline optimum: same LP as the MPC on a sparse layout, week-scale instances."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.stack.optimize import evaluate_plan, offline_optimal, qubit_baseline_plan
from qubit_sim.stack.optimize.lp import (
    EvLayout,
    build_site_lp,
    extract_plan,
    lp_coefficients,
    solve_with_fallback,
)


@pytest.mark.parametrize("seed", range(4))
def test_dropping_redundant_taper_rows_is_exact(opt, seed):
    # Taper rows that cannot bind are zeroed for speed; restoring every row must not change the
    # optimum.
    rng = np.random.default_rng(100 + seed)
    problem = opt.random_problem(rng, n_slots=24, n_ev=8, import_max_kw=60.0)
    fast = offline_optimal(problem)
    layout = EvLayout.available(problem.availability())
    coef = lp_coefficients(problem, layout, True)
    evs = problem.evs
    i = layout.ev_of
    coef["taper_p"] = 1.0 - evs.knee_soc[i]
    coef["taper_e"] = evs.p_max_kw[i] / evs.capacity_kwh[i]
    coef["taper_rhs"] = evs.p_max_kw[i] * (1.0 - evs.soc0[i])
    full = build_site_lp(layout, True, 0, coef)
    solve_with_fallback(full.problem)
    full_plan = extract_plan(full, problem)
    opt.assert_feasible(problem, full_plan)
    reference = evaluate_plan(problem, full_plan).total
    assert abs(fast.objective.total - reference) <= 1e-6 * max(1.0, abs(reference))
    # And the fast plan satisfies every taper row.
    opt.assert_feasible(problem, fast.plan)


def test_week_with_hundreds_of_sessions(opt):
    # 672 quarter-hour slots, 250 sessions of 2-14 h.
    rng = np.random.default_rng(11)
    problem = opt.random_problem(rng, n_slots=672, n_ev=250, slot_s=900, import_max_kw=300.0)
    arrival = rng.integers(0, 660, 250)
    evs = replace(
        problem.evs, arrival_slot=arrival, departure_slot=arrival + rng.integers(8, 57, 250)
    )
    problem = replace(problem, evs=evs)
    result = offline_optimal(problem)
    assert result.status == "optimal"
    assert result.schedule.shape[0] == 672
    opt.assert_feasible(problem, result.plan)
    baseline = evaluate_plan(problem, qubit_baseline_plan(problem)).total
    assert result.objective.total <= baseline
    assert result.objective.unmet_kwh < problem.evs.e_needed_kwh.sum()


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_slots=st.integers(1, 12),
    n_ev=st.integers(0, 5),
    battery=st.booleans(),
)
def test_offline_feasible_and_lower_bound_on_any_small_site(opt, seed, n_slots, n_ev, battery):
    rng = np.random.default_rng(seed)
    problem = opt.random_problem(rng, n_slots=n_slots, n_ev=n_ev, battery=battery, slot_s=900)
    result = offline_optimal(problem)
    opt.assert_feasible(problem, result.plan)
    baseline = evaluate_plan(problem, qubit_baseline_plan(problem)).total
    assert result.objective.total <= baseline + 1e-6 * max(1.0, abs(baseline))
