"""The offline optimum: the site LP over the whole horizon with perfect foresight.

Same model and objective as :class:`~qubit_sim.stack.optimize.mpc.MpcOptimizer`, built fresh with
constant coefficients and EV variables only where a vehicle is present, so a week at 15 min (672
slots) with hundreds of sessions stays a sparse LP that solves in seconds. It is the lower bound
that every controller comparison reports. Given the steps inside each slot
(:class:`~qubit_sim.stack.optimize.problem.IntraSlot`), it prices import and export step by step,
as the simulator's KPI does, so the bound holds on the KPI and not only on slot means.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd

from qubit_sim.stack.optimize.lp import (
    EvLayout,
    build_site_lp,
    extract_plan,
    lp_coefficients,
    solve_with_fallback,
)
from qubit_sim.stack.optimize.plan import (
    OptimizationResult,
    ev_delivered_kwh,
    evaluate_plan,
    schedule_frame,
)
from qubit_sim.stack.optimize.problem import LinearGridConstraint, SiteProblem

__all__ = ["offline_optimal"]


def offline_optimal(
    problem: SiteProblem,
    grid: LinearGridConstraint | None = None,
    *,
    solver: str = cp.HIGHS,
    fallback_solver: str | None = cp.CLARABEL,
) -> OptimizationResult:
    """Solve ``problem`` over its whole horizon with perfect foresight.

    Raises:
        OptimizationError: no solver succeeded.
    """
    layout = EvLayout.available(problem.availability() & (problem.evs.p_max_kw[:, None] > 0))
    has_battery = problem.battery is not None
    n_grid = 0 if grid is None else grid.n_constraints
    coef = lp_coefficients(problem, layout, has_battery, grid, n_grid)
    lp = build_site_lp(layout, has_battery, n_grid, coef)
    outcome = solve_with_fallback(lp.problem, solver, fallback_solver)
    plan = extract_plan(lp, problem)
    unmet = np.maximum(problem.evs.e_needed_kwh - ev_delivered_kwh(problem, plan), 0.0)
    return OptimizationResult(
        schedule=schedule_frame(problem, plan, has_battery),
        plan=plan,
        objective=evaluate_plan(problem, plan, grid),
        unmet_kwh=pd.Series(unmet, index=pd.Index(problem.evs.ev_ids, name="ev_id")),
        status=outcome.status,
        solver=outcome.solver,
        solve_time_s=outcome.seconds,
        fallback_reason=outcome.fallback_reason,
    )
