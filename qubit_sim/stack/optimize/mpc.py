"""Model-predictive control: the exact site LP, built once, re-solved every control cycle.

The LP (see :mod:`qubit_sim.stack.optimize.lp`) is compiled once with :class:`cvxpy.Parameter`
coefficients in DPP form, so a re-solve only refreshes numbers: prices, forecasts, limits, the
battery state and the EV sessions. The model has ``max_evs`` session rows over ``horizon_slots``
slots; the sessions of the cycle fill the first rows, availability enters as a per-(session, slot)
power bound, and unused rows have ``p_max`` 0. A problem shorter than the horizon (the end of a
scenario) is padded with idle slots.

Objective = cost_weight x (import cost - export revenue) + carbon_weight x emissions + demand charge
on the peak increment + battery degradation + priority-weighted unmet-energy penalty - terminal
battery value + penalty on slack beyond the import/export/grid limits. Limits are soft: a cycle
whose limits cannot be met is solved anyway and the excess is reported in the result's objective
terms (``import_excess_kwh``, ``export_excess_kwh``, ``grid_violation``).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd

from qubit_sim.stack.optimize.lp import (
    EvLayout,
    build_site_lp,
    coefficient_shapes,
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
from qubit_sim.stack.optimize.problem import LinearGridConstraint, OptimizationError, SiteProblem

__all__ = ["MpcOptimizer"]


class MpcOptimizer:
    """Re-solvable site LP.

    Args:
        horizon_slots: Slots in the model; problems may be shorter (padded), not longer.
        max_evs: Session rows in the model.
        has_battery: Whether the model has a battery (a problem without one then leaves it idle).
        n_grid_constraints: Rows of the optional :class:`LinearGridConstraint`; 0 for none.
        solver: Primary solver (HiGHS).
        fallback_solver: Used when the primary fails; ``None`` to raise instead.
    """

    def __init__(
        self,
        horizon_slots: int,
        max_evs: int,
        has_battery: bool,
        *,
        n_grid_constraints: int = 0,
        solver: str = cp.HIGHS,
        fallback_solver: str | None = cp.CLARABEL,
    ) -> None:
        if horizon_slots < 1:
            raise OptimizationError(f"horizon_slots = {horizon_slots} must be >= 1")
        if max_evs < 0 or n_grid_constraints < 0:
            raise OptimizationError(
                f"max_evs = {max_evs} and n_grid_constraints = {n_grid_constraints} must be >= 0"
            )
        self.horizon_slots = int(horizon_slots)
        self.max_evs = int(max_evs)
        self.has_battery = bool(has_battery)
        self.n_grid_constraints = int(n_grid_constraints)
        self.solver = solver
        self.fallback_solver = fallback_solver
        self._layout = EvLayout.dense(self.max_evs, self.horizon_slots)
        shapes = coefficient_shapes(self._layout, self.has_battery, self.n_grid_constraints)
        self._params = {name: cp.Parameter(shape, name=name) for name, shape in shapes.items()}
        self._lp = build_site_lp(
            self._layout, self.has_battery, self.n_grid_constraints, self._params
        )
        if not self._lp.problem.is_dpp():  # pragma: no cover - a modelling bug
            raise OptimizationError("MPC model is not DPP-compliant; re-solves would recompile")

    @property
    def problem(self) -> cp.Problem:
        """The underlying cvxpy problem."""
        return self._lp.problem

    def _check(self, problem: SiteProblem, grid: LinearGridConstraint | None) -> None:
        if problem.n_slots > self.horizon_slots:
            raise OptimizationError(
                f"problem has {problem.n_slots} slots; this MPC was built for "
                f"{self.horizon_slots}. Build it with horizon_slots >= {problem.n_slots}"
            )
        if problem.evs.n > self.max_evs:
            raise OptimizationError(
                f"problem has {problem.evs.n} EV sessions; this MPC was built for "
                f"max_evs = {self.max_evs}"
            )
        if problem.battery is not None and not self.has_battery:
            raise OptimizationError(
                "problem has a battery but the MPC was built with has_battery=False"
            )
        if grid is not None and grid.n_constraints > self.n_grid_constraints:
            raise OptimizationError(
                f"grid constraint has {grid.n_constraints} rows; this MPC was built with "
                f"n_grid_constraints = {self.n_grid_constraints}"
            )

    def solve(
        self, problem: SiteProblem, grid: LinearGridConstraint | None = None
    ) -> OptimizationResult:
        """Plan ``problem`` (one control cycle).

        Raises:
            OptimizationError: the problem does not fit the model, or no solver succeeded.
        """
        self._check(problem, grid)
        values = lp_coefficients(
            problem, self._layout, self.has_battery, grid, self.n_grid_constraints
        )
        for name, param in self._params.items():
            param.value = values[name]
        outcome = solve_with_fallback(self._lp.problem, self.solver, self.fallback_solver)
        plan = extract_plan(self._lp, problem)
        include_battery = self.has_battery and problem.battery is not None
        unmet = np.maximum(problem.evs.e_needed_kwh - ev_delivered_kwh(problem, plan), 0.0)
        return OptimizationResult(
            schedule=schedule_frame(problem, plan, include_battery),
            plan=plan,
            objective=evaluate_plan(problem, plan, grid),
            unmet_kwh=pd.Series(unmet, index=pd.Index(problem.evs.ev_ids, name="ev_id")),
            status=outcome.status,
            solver=outcome.solver,
            solve_time_s=outcome.seconds,
            fallback_reason=outcome.fallback_reason,
        )
