"""The site LP as sparse matrices, solved by HiGHS directly: the MPC's fast path.

The model is the one of :mod:`qubit_sim.stack.optimize.lp`, with the same coefficients (from
:func:`~qubit_sim.stack.optimize.lp.lp_coefficients`), assembled with :mod:`scipy.sparse` for the
problem at hand and passed to ``highspy``: EV variables exist only where a vehicle is present (the
cvxpy MPC model carries every session x slot pair, because its structure is fixed), and there is no
canonicalisation or parameter mapping per cycle. The cvxpy model stays the reference and the
fallback; tests prove both reach the same optimum. It also takes the steps inside the slots
(:class:`~qubit_sim.stack.optimize.problem.IntraSlot`, the offline optimum's exact pricing).

Cumulative delivered energy ``E`` is bounded only where the bound is not implied: ``E <= e_needed``
on the last slot of each session. ``0 <= E`` and ``E <= e_needed`` on earlier slots follow from
``p >= 0`` and the chain ``E[t] = E[t-1] + p[t] * dt``; stating them anyway leaves many columns at
a bound in every optimal basis, a degenerate LP: on the hardest MPC instance (50 sessions over all
96 slots) HiGHS needs about a quarter more simplex iterations with them. Max-value scaling
(``simplex_scale_strategy = 4``) saves another tenth; ``benchmarks/bench_optimize.py`` measures
both against the formulation with every bound stated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from qubit_sim.stack.optimize.lp import EvLayout, lp_coefficients
from qubit_sim.stack.optimize.plan import Plan
from qubit_sim.stack.optimize.problem import LinearGridConstraint, OptimizationError, SiteProblem

__all__ = ["DirectOutcome", "solve_direct"]

_INF = highspy.kHighsInf
_DEFAULT_OPTIONS: dict[str, Any] = {"simplex_scale_strategy": 4}


@dataclass(frozen=True)
class DirectOutcome:
    """Result of :func:`solve_direct`.

    Attributes:
        plan: The optimal setpoints.
        objective: LP objective value (constants dropped, as in the cvxpy model).
        seconds: Wall time of assembly and all HiGHS runs [s].
        taper_rows: CC-CV taper rows in the model (the ones that can bind).
        n_columns: Variables passed to HiGHS.
        n_rows: Constraints passed to HiGHS.
        simplex_iterations: Simplex iterations HiGHS needed.
    """

    plan: Plan
    objective: float
    seconds: float
    taper_rows: int
    n_columns: int
    n_rows: int
    simplex_iterations: int


class _Columns:
    """Column offsets of the variable blocks."""

    def __init__(self) -> None:
        self.size = 0
        self.blocks: dict[str, slice] = {}

    def add(self, name: str, n: int) -> np.ndarray:
        self.blocks[name] = slice(self.size, self.size + n)
        self.size += n
        return np.arange(self.size - n, self.size)


class _Rows:
    """Sparse rows accumulated as COO triplets with lower/upper bounds."""

    def __init__(self) -> None:
        self.n = 0
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []

    def block(self, lo: Any, hi: Any, n: int, *terms: tuple[Any, Any, Any]) -> None:
        """``n`` rows ``lo <= sum(value * col) <= hi``; each term is (row-in-block, col, value)."""
        for rows, cols, vals in terms:
            rows = np.broadcast_to(np.asarray(rows), np.shape(cols))
            self.r.append(self.n + rows)
            self.c.append(np.asarray(cols))
            self.v.append(np.broadcast_to(np.asarray(vals, dtype=float), np.shape(cols)))
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (n,)))
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (n,)))
        self.n += n

    def matrix(self, n_cols: int) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
        a = sp.csc_matrix(
            (np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c))),
            shape=(self.n, n_cols),
        )
        a.sum_duplicates()
        return a, np.concatenate(self.lo), np.concatenate(self.hi)


@dataclass(frozen=True)
class _Model:
    layout: EvLayout
    cols: _Columns
    rows: _Rows
    lower: np.ndarray
    upper: np.ndarray
    cost: np.ndarray
    taper_rows: int


def _assemble(
    problem: SiteProblem, grid: LinearGridConstraint | None, implied_bounds: bool = False
) -> _Model:
    """Columns, bounds, costs and rows of the site LP (see :mod:`~qubit_sim.stack.optimize.lp`)."""
    t = problem.n_slots
    layout = EvLayout.available(problem.availability() & (problem.evs.p_max_kw[:, None] > 0))
    has_battery = problem.battery is not None
    n_grid = 0 if grid is None else grid.n_constraints
    coef = lp_coefficients(problem, layout, has_battery, grid, n_grid)
    k = layout.n_entries
    period = problem.period_index()
    n_periods = problem.n_periods

    cols = _Columns()
    imp, exp = cols.add("imp", t), cols.add("exp", t)
    s_imp, s_exp = cols.add("s_imp", t), cols.add("s_exp", t)
    pv_used = cols.add("pv_used", t)
    peak = cols.add("peak", n_periods)
    x, energy = cols.add("x", k), cols.add("energy", k)
    ch = dis = eb = np.zeros(0, dtype=np.int64)
    if has_battery:
        ch, dis, eb = cols.add("ch", t), cols.add("dis", t), cols.add("eb", t)
    s_grid = cols.add("s_grid", n_grid * t).reshape(n_grid, t)
    stepped = "step_dev" in coef
    n_steps = int(np.shape(coef["step_dev"])[1]) if stepped else 0
    step = {name: cols.add(name, t * n_steps) for name in ("u", "v", "s_u", "s_v")}

    lower = np.zeros(cols.size)
    upper = np.full(cols.size, _INF)
    cost = np.zeros(cols.size)
    lower[pv_used], upper[pv_used] = coef["pv_min"], coef["pv"]
    lower[peak] = coef["peak0"]
    cost[peak] = coef["demand_charge"]
    if stepped:
        # imp is the slot's site power (free), exp and the slot slacks are unused: the steps carry
        # import, export, their prices and limits.
        lower[imp] = -_INF
        upper[exp] = upper[s_imp] = upper[s_exp] = 0.0
        upper[step["u"]], upper[step["v"]] = coef["import_max"], coef["export_max"]
        w_import, w_export = np.ravel(coef["step_w_import"]), np.ravel(coef["step_w_export"])
        cost[step["u"]], cost[step["v"]] = w_import, -w_export
        cost[step["s_u"]] = w_import + coef["step_w_slack"]
        cost[step["s_v"]] = coef["step_w_slack"] - w_export
    else:
        cost[imp], cost[exp] = coef["w_import"], -coef["w_export"]
        cost[s_imp], cost[s_exp] = coef["w_slack"], coef["w_slack"]

    slots = np.arange(t)
    rows = _Rows()
    ev_terms: list[tuple[Any, Any, Any]] = []
    if k:
        diff, _, select = layout.matrices()
        upper[x] = coef["ev_ub"]
        last_ev, last_entry = select.nonzero()
        if implied_bounds:
            lower[energy], upper[energy] = 0.0, coef["e_need"][layout.ev_of]
        else:
            # Only the session's total is capped; the rest is implied (see module docstring).
            lower[energy] = -_INF
            upper[energy[last_entry]] = coef["e_need"][last_ev]
        cost[energy[last_entry]] = -coef["unmet_w"][last_ev]
        ev_terms.append((layout.slot_of, x, -coef["ev_inv_eff"]))
        d = diff.tocoo()
        entries = np.arange(k)
        rows.block(0.0, 0.0, k, (d.row, energy[d.col], d.data), (entries, x, -coef["ev_dt"]))
    battery_terms: list[tuple[Any, Any, Any]] = []
    if has_battery:
        upper[ch], upper[dis] = coef["ch_max"], coef["dis_max"]
        lower[eb], upper[eb] = coef["e_lo"], coef["e_hi"]
        cost[ch] = cost[ch] + coef["w_deg"]
        cost[dis] = cost[dis] + coef["w_deg"]
        cost[eb[-1]] = -coef["terminal"]
        rhs = np.zeros(t)
        rhs[0] = coef["e0"]
        rows.block(
            rhs,
            rhs,
            t,
            (slots, eb, 1.0),
            (slots[1:], eb[:-1], -1.0),
            (slots, ch, -coef["gain_ch"]),
            (slots, dis, coef["gain_dis"]),
        )
        battery_terms = [(slots, ch, -1.0), (slots, dis, 1.0)]
    # Site balance: imp - exp + pv_used - sum(x / eff) - ch + dis = load.
    rows.block(
        coef["load"],
        coef["load"],
        t,
        (slots, imp, 1.0),
        (slots, exp, -1.0),
        (slots, pv_used, 1.0),
        *ev_terms,
        *battery_terms,
    )
    if stepped:
        # u + s_u - v - s_v - site[t] = dev at every step; mean step import <= the period's peak.
        at = np.arange(t * n_steps)
        slot_of_step = np.repeat(slots, n_steps)
        rows.block(
            np.ravel(coef["step_dev"]),
            np.ravel(coef["step_dev"]),
            t * n_steps,
            (at, step["u"], 1.0),
            (at, step["s_u"], 1.0),
            (at, step["v"], -1.0),
            (at, step["s_v"], -1.0),
            (at, imp[slot_of_step], -1.0),
        )
        rows.block(
            -_INF,
            0.0,
            t,
            (slot_of_step, step["u"], 1.0 / n_steps),
            (slot_of_step, step["s_u"], 1.0 / n_steps),
            (slots, peak[period], -1.0),
        )
    else:
        rows.block(-_INF, coef["import_max"], t, (slots, imp, 1.0), (slots, s_imp, -1.0))
        rows.block(-_INF, coef["export_max"], t, (slots, exp, 1.0), (slots, s_exp, -1.0))
        rows.block(-_INF, 0.0, t, (slots, imp, 1.0), (slots, peak[period], -1.0))
    if n_grid:
        sens = np.repeat(coef["g_sens"][:, 0], t)
        mt = np.arange(n_grid * t)
        site_cols = (np.tile(imp, n_grid), np.tile(exp, n_grid))
        flat = s_grid.reshape(-1)
        cost[flat] = np.tile(coef["w_slack"], n_grid)
        for bound, slack in ((coef["g_upper"], -1.0), (coef["g_lower"], 1.0)):
            lo, hi = (-_INF, bound.reshape(-1)) if slack < 0 else (bound.reshape(-1), _INF)
            rows.block(
                lo,
                hi,
                n_grid * t,
                (mt, site_cols[0], sens),
                (mt, site_cols[1], -sens),
                (mt, flat, slack),
            )

    taper = np.zeros(0, dtype=np.int64)
    if k:
        # Rows that cannot bind were zeroed by lp_coefficients; only the others enter the model.
        taper = np.flatnonzero((coef["taper_p"] != 0) | (coef["taper_e"] != 0))
        at = np.arange(taper.size)
        rows.block(
            -_INF,
            coef["taper_rhs"][taper],
            taper.size,
            (at, x[taper], coef["taper_p"][taper]),
            (at, energy[taper], coef["taper_e"][taper]),
        )
    return _Model(layout, cols, rows, lower, upper, cost, int(taper.size))


def solve_direct(
    problem: SiteProblem,
    grid: LinearGridConstraint | None = None,
    *,
    options: dict[str, Any] | None = None,
    implied_bounds: bool = False,
) -> DirectOutcome:
    """Solve the site LP of ``problem`` with HiGHS (dual simplex after presolve).

    Args:
        problem: The site over its horizon.
        grid: Optional linearised feeder limits.
        options: Extra HiGHS options (they override the defaults, ``simplex_scale_strategy`` 4).
        implied_bounds: Also state the implied bounds ``0 <= E <= e_needed`` on every slot of
            the delivered-energy chain: the same optimum, reached in more simplex iterations
            (``benchmarks/bench_optimize.py`` compares the two).

    Raises:
        OptimizationError: HiGHS did not report an optimal solution.
    """
    start = time.perf_counter()
    model = _assemble(problem, grid, implied_bounds)
    cols, rows = model.cols, model.rows
    a, row_lo, row_hi = rows.matrix(cols.size)
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    for name, value in {**_DEFAULT_OPTIONS, **(options or {})}.items():
        if highs.setOptionValue(name, value) == highspy.HighsStatus.kError:
            raise OptimizationError(f"HiGHS rejected option {name} = {value!r}")
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = cols.size, rows.n
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = model.cost, model.lower, model.upper
    lp.row_lower_, lp.row_upper_ = row_lo, row_hi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr
    lp.a_matrix_.index_ = a.indices
    lp.a_matrix_.value_ = a.data
    highs.passModel(lp)

    highs.run()
    status = highs.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise OptimizationError(f"HiGHS returned {highs.modelStatusToString(status)}")
    values = np.asarray(highs.getSolution().col_value)
    info = highs.getInfo()
    objective = float(info.objective_function_value)
    plan = _plan(problem, model.layout, values, cols)
    return DirectOutcome(
        plan=plan,
        objective=objective,
        seconds=time.perf_counter() - start,
        taper_rows=model.taper_rows,
        n_columns=cols.size,
        n_rows=rows.n,
        simplex_iterations=int(info.simplex_iteration_count),
    )


def _plan(problem: SiteProblem, layout: EvLayout, values: np.ndarray, cols: _Columns) -> Plan:
    t, n = problem.n_slots, problem.evs.n
    p_ev = np.zeros((n, t))
    p_ev[layout.ev_of, layout.slot_of] = np.maximum(values[cols.blocks["x"]], 0.0)
    charge, discharge = np.zeros(t), np.zeros(t)
    if "ch" in cols.blocks:
        charge = np.maximum(values[cols.blocks["ch"]], 0.0)
        discharge = np.maximum(values[cols.blocks["dis"]], 0.0)
    pv_used = np.minimum(np.maximum(values[cols.blocks["pv_used"]], 0.0), problem.pv_kw)
    if not problem.pv_curtailment_allowed:
        pv_used = problem.pv_kw.copy()
    return Plan(p_ev, charge, discharge, pv_used)
