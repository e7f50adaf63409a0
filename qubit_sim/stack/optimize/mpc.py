"""Model-predictive control: the exact site LP, re-solved every control cycle.

Two ways to the same optimum (see :mod:`qubit_sim.stack.optimize.lp` for the model):

* ``method="direct"`` (default with HiGHS): each cycle the LP is assembled as sparse matrices for
  the sessions actually present and handed to HiGHS through ``highspy``
  (:mod:`qubit_sim.stack.optimize.direct`). No per-cycle canonicalisation, and EVs absent over a
  slot have no variable there.
* ``method="dpp"``: the cvxpy model, compiled once with :class:`cvxpy.Parameter` coefficients in
  DPP form, so a re-solve only refreshes numbers. The model has ``max_evs`` session rows over
  ``horizon_slots`` slots; the sessions of the cycle fill the first rows, availability enters as a
  per-(session, slot) power bound, and unused rows have ``p_max`` 0. A problem shorter than the
  horizon (the end of a scenario) is padded with idle slots. This is the reference model, any cvxpy
  solver can solve it, and it is the fallback when the direct path fails.

Objective = cost_weight x (import cost - export revenue) + carbon_weight x emissions + demand charge
on the peak increment of each billing period the horizon touches + battery degradation + priority-weighted unmet-energy penalty - terminal
battery value + penalty on slack beyond the import/export/grid limits. Limits are soft: a cycle
whose limits cannot be met is solved anyway and the excess is reported in the result's objective
terms (``import_excess_kwh``, ``export_excess_kwh``, ``grid_violation``).
"""

from __future__ import annotations

from dataclasses import replace

import cvxpy as cp
import numpy as np
import pandas as pd

from qubit_sim.stack.optimize.direct import solve_direct
from qubit_sim.stack.optimize.lp import (
    EvLayout,
    SiteLp,
    SolveOutcome,
    build_site_lp,
    coefficient_shapes,
    extract_plan,
    lp_coefficients,
    solve_with_fallback,
)
from qubit_sim.stack.optimize.plan import (
    OptimizationResult,
    Plan,
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
        max_billing_periods: Billing periods a horizon may touch, each with its own demand peak
            (2 covers a horizon of up to one period, however it is aligned).
        solver: Primary solver (HiGHS).
        fallback_solver: Used when the primary fails; ``None`` to raise instead.
        method: ``"direct"`` (HiGHS through highspy, the default; needs ``solver="HIGHS"``) or
            ``"dpp"`` (the cvxpy model, built once on first use).
    """

    def __init__(
        self,
        horizon_slots: int,
        max_evs: int,
        has_battery: bool,
        *,
        n_grid_constraints: int = 0,
        max_billing_periods: int = 2,
        solver: str = cp.HIGHS,
        fallback_solver: str | None = cp.CLARABEL,
        method: str = "direct",
    ) -> None:
        if horizon_slots < 1:
            raise OptimizationError(f"horizon_slots = {horizon_slots} must be >= 1")
        if max_evs < 0 or n_grid_constraints < 0:
            raise OptimizationError(
                f"max_evs = {max_evs} and n_grid_constraints = {n_grid_constraints} must be >= 0"
            )
        if method not in ("direct", "dpp"):
            raise OptimizationError(f"method = {method!r} must be 'direct' or 'dpp'")
        if method == "direct" and solver != cp.HIGHS:
            # The direct path is HiGHS only; any other solver goes through cvxpy.
            method = "dpp"
        self.method = method
        if max_billing_periods < 1:
            raise OptimizationError(f"max_billing_periods = {max_billing_periods} must be >= 1")
        self.max_billing_periods = int(max_billing_periods)
        self.horizon_slots = int(horizon_slots)
        self.max_evs = int(max_evs)
        self.has_battery = bool(has_battery)
        self.n_grid_constraints = int(n_grid_constraints)
        self.solver = solver
        self.fallback_solver = fallback_solver
        self._layout = EvLayout.dense(self.max_evs, self.horizon_slots)
        self._params: dict[str, cp.Parameter] = {}
        self._lp: SiteLp | None = None
        if self.method == "dpp":
            self._build()

    def _build(self) -> SiteLp:
        if self._lp is None:
            shapes = coefficient_shapes(
                self._layout, self.has_battery, self.n_grid_constraints, self.max_billing_periods
            )
            self._params = {name: cp.Parameter(shape, name=name) for name, shape in shapes.items()}
            self._lp = build_site_lp(
                self._layout, self.has_battery, self.n_grid_constraints, self._params
            )
            if not self._lp.problem.is_dpp():  # pragma: no cover - a modelling bug
                raise OptimizationError("MPC model is not DPP-compliant; re-solves would recompile")
        return self._lp

    @property
    def problem(self) -> cp.Problem:
        """The cvxpy reference model (built on first access)."""
        return self._build().problem

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
        if problem.n_periods > self.max_billing_periods:
            raise OptimizationError(
                f"problem touches {problem.n_periods} billing periods; this MPC was built for "
                f"max_billing_periods = {self.max_billing_periods}"
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
        if self.method == "direct":
            try:
                direct = solve_direct(problem, grid)
            except OptimizationError as exc:
                if self.fallback_solver is None:
                    raise
                plan, outcome = self._solve_dpp(problem, grid, self.fallback_solver, None)
                outcome = replace(outcome, fallback_reason=f"HIGHS (direct) failed: {exc}")
            else:
                plan = direct.plan
                outcome = SolveOutcome("optimal", cp.HIGHS, direct.seconds, None)
        else:
            plan, outcome = self._solve_dpp(problem, grid, self.solver, self.fallback_solver)
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

    def _solve_dpp(
        self,
        problem: SiteProblem,
        grid: LinearGridConstraint | None,
        solver: str,
        fallback: str | None,
    ) -> tuple[Plan, SolveOutcome]:
        lp = self._build()
        values = lp_coefficients(
            problem,
            self._layout,
            self.has_battery,
            grid,
            self.n_grid_constraints,
            self.max_billing_periods,
        )
        for name, param in self._params.items():
            param.value = values[name]
        outcome = solve_with_fallback(lp.problem, solver, fallback)
        return extract_plan(lp, problem), outcome
