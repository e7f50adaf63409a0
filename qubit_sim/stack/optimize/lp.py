"""The exact site LP shared by the MPC and the offline optimum.

The model is written once over *coefficients* that are either :class:`cvxpy.Parameter` objects (the
MPC: built once, DPP-compliant, re-solved each cycle) or plain numpy arrays (the offline optimum:
built fresh over the whole horizon). EV power lives on a flat vector of *entries* ``k`` (session,
slot): every session x slot for the MPC (availability is a parameter), only the available pairs for
the offline problem (so a week with hundreds of sessions stays small).

Variables and constraints (dt = slot length [h]):

* ``x[k] >= 0`` EV power [kW], ``x <= ev_ub`` (``p_max`` where available, else 0);
  ``E[k]`` energy delivered to the session by the end of the entry's slot [kWh],
  ``E[k] - E[prev(k)] = dt * x[k]``; taper ``(1 - knee) x + (p_max / cap) E <= p_max (1 - soc0)``
  (the linear CC-CV limit at end-of-slot SOC; with ``knee = 1`` it is the capacity limit);
  ``E[last] <= e_needed``.
* Site power ``load + G (x / eff) + ch - dis - pv_used = imp - exp``; ``imp <= import_max + s_imp``,
  ``exp <= export_max + s_exp`` with penalised slacks ``s >= 0``; ``pv_min <= pv_used <= pv``.
* Peaks, one per billing period ``p``: ``imp[t] <= peak[period(t)]`` (``S @ peak`` with the
  slot-to-period matrix ``S``), ``peak >= peak_floor`` (the peak reached so far in the first
  period, 0 in later ones).
* Battery: ``eb[t] = eb[t-1] + gain_ch ch - gain_dis dis``, ``e_lo <= eb <= e_hi``, rate limits.
* Grid hook: ``lower - base - s_g <= sens * site <= upper - base + s_g``.

Objective (constants dropped): ``w_import . imp - w_export . exp + w_slack . (s_imp + s_exp)
+ demand_charge * sum(peak) + w_deg . (ch + dis) - terminal * eb[T-1] - unmet_w . E[last]
+ sum(s_g) . w_slack``.

Steps inside the slots (a problem with :class:`~qubit_sim.stack.optimize.problem.IntraSlot`, arrays
only: the offline optimum) replace the slot import and export: per step ``j`` of slot ``t``,
``(u + s_u)[t, j] - (v + s_v)[t, j] = site[t] + step_dev[t, j]`` with ``0 <= u <= import_max``,
``0 <= v <= export_max`` and penalised excesses ``s_u, s_v >= 0``; the peak bounds the slot's mean
step import, ``mean_j (u + s_u)[t, j] <= peak[period(t)]``; the objective prices every step,
``step_w_import . (u + s_u) - step_w_export . (v + s_v) + step_w_slack * sum(s_u + s_v)``. Where
the site power keeps its sign over a slot this equals the slot-mean model; where it changes sign
it is the exact cost of holding the setpoints constant over the slot.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from qubit_sim.stack.optimize.plan import Plan
from qubit_sim.stack.optimize.problem import LinearGridConstraint, OptimizationError, SiteProblem

__all__ = [
    "EvLayout",
    "SiteLp",
    "SolveOutcome",
    "build_site_lp",
    "coefficient_shapes",
    "extract_plan",
    "lp_coefficients",
    "solve_with_fallback",
]

_SOLVED = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


@dataclass(frozen=True)
class EvLayout:
    """Which (session, slot) pairs carry an EV power variable.

    Entries of one session are contiguous and in slot order.

    Attributes:
        n_ev: Number of session rows ``N``.
        n_slots: Number of slots ``T``.
        ev_of: ``(K,)`` session of each entry.
        slot_of: ``(K,)`` slot of each entry.
    """

    n_ev: int
    n_slots: int
    ev_of: np.ndarray
    slot_of: np.ndarray

    @classmethod
    def dense(cls, n_ev: int, n_slots: int) -> EvLayout:
        """Every session x slot pair."""
        ev_of, slot_of = np.divmod(np.arange(n_ev * n_slots), n_slots)
        return cls(n_ev, n_slots, ev_of, slot_of)

    @classmethod
    def available(cls, availability: np.ndarray) -> EvLayout:
        """Only the pairs where ``availability`` ``(N, T)`` is true."""
        ev_of, slot_of = np.nonzero(availability)
        return cls(availability.shape[0], availability.shape[1], ev_of, slot_of)

    @property
    def n_entries(self) -> int:
        """Number of entries ``K``."""
        return int(self.ev_of.shape[0])

    def matrices(self) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
        """Difference ``D`` (K x K), slot aggregation ``G`` (T x K), last-entry selector ``H``
        (N x K)."""
        k = self.n_entries
        entries = np.arange(k)
        continues = np.zeros(k, dtype=bool)
        continues[1:] = self.ev_of[1:] == self.ev_of[:-1]
        rows = np.concatenate([entries, entries[continues]])
        cols = np.concatenate([entries, entries[continues] - 1])
        vals = np.concatenate([np.ones(k), -np.ones(int(continues.sum()))])
        diff = sp.csr_matrix((vals, (rows, cols)), shape=(k, k))
        agg = sp.csr_matrix((np.ones(k), (self.slot_of, entries)), shape=(self.n_slots, k))
        last = np.ones(k, dtype=bool)
        last[:-1] = ~continues[1:]
        select = sp.csr_matrix(
            (np.ones(int(last.sum())), (self.ev_of[last], entries[last])), shape=(self.n_ev, k)
        )
        return diff, agg, select


def coefficient_shapes(
    layout: EvLayout, has_battery: bool, n_grid: int, n_periods: int = 1
) -> dict[str, tuple[int, ...]]:
    """Name and shape of every coefficient of :func:`build_site_lp` with room for ``n_periods``
    billing periods."""
    k, n, t = layout.n_entries, layout.n_ev, layout.n_slots
    shapes: dict[str, tuple[int, ...]] = {
        "load": (t,),
        "pv": (t,),
        "pv_min": (t,),
        "w_import": (t,),
        "w_export": (t,),
        "w_slack": (t,),
        "import_max": (),
        "export_max": (),
        "demand_charge": (),
        "peak0": (n_periods,),
        "period_of_slot": (t, n_periods),
    }
    if k:
        shapes.update(
            ev_ub=(k,),
            ev_dt=(k,),
            taper_p=(k,),
            taper_e=(k,),
            taper_rhs=(k,),
            ev_inv_eff=(k,),
            e_need=(n,),
            unmet_w=(n,),
        )
    if has_battery:
        shapes.update(
            ch_max=(t,),
            dis_max=(t,),
            gain_ch=(t,),
            gain_dis=(t,),
            e0=(),
            e_lo=(t,),
            e_hi=(t,),
            w_deg=(t,),
            terminal=(),
        )
    if n_grid:
        shapes.update(g_sens=(n_grid, 1), g_upper=(n_grid, t), g_lower=(n_grid, t))
    return shapes


def _pad(values: np.ndarray, length: int, fill: float = 0.0) -> np.ndarray:
    out = np.full(length, fill, dtype=float)
    out[: values.shape[0]] = values
    return out


def lp_coefficients(
    problem: SiteProblem,
    layout: EvLayout,
    has_battery: bool,
    grid: LinearGridConstraint | None = None,
    n_grid: int = 0,
    n_periods: int | None = None,
) -> dict[str, Any]:
    """Numeric coefficients of ``problem`` for a model of ``layout.n_slots`` slots.

    Slots beyond the problem's horizon are padding: no load, no PV, no price, no EV, idle battery,
    counted in the last billing period; session rows beyond ``problem.evs.n`` are unused
    (``p_max`` 0), and so are peaks beyond ``problem.n_periods``. ``n_periods=None`` sizes the peaks
    to the problem, with a sparse slot-to-period matrix.
    """
    horizon, t_used = layout.n_slots, problem.n_slots
    dt, w = problem.dt_h, problem.weights
    pv = _pad(problem.pv_kw, horizon)
    coef: dict[str, Any] = {
        "load": _pad(problem.load_kw, horizon),
        "pv": pv,
        "pv_min": np.zeros(horizon) if problem.pv_curtailment_allowed else pv,
        "w_import": _pad(problem.effective_cost_per_kwh() * dt, horizon),
        "w_export": _pad(w.cost_weight * problem.export_price_per_kwh * dt, horizon),
        "w_slack": _pad(np.full(t_used, w.limit_penalty_per_kwh * dt), horizon),
        "import_max": problem.import_max_kw,
        "export_max": problem.export_max_kw,
        "demand_charge": w.demand_charge_per_kw,
        **_period_coefficients(problem, horizon, n_periods),
    }
    intra = problem.intra_slot
    if intra is not None:
        if horizon != t_used:
            raise OptimizationError(
                f"intra-slot steps need a model of exactly {t_used} slots, not {horizon}"
            )
        step_dt = dt / intra.n_steps
        coef.update(
            step_dev=intra.deviation_kw,
            step_w_import=(
                w.cost_weight * intra.price_per_kwh + w.carbon_weight * intra.carbon_g_per_kwh
            )
            * step_dt,
            step_w_export=w.cost_weight * intra.export_price_per_kwh * step_dt,
            step_w_slack=w.limit_penalty_per_kwh * step_dt,
        )
    if layout.n_entries:
        evs = problem.evs
        rows = layout.n_ev
        if evs.n > rows:
            raise OptimizationError(f"{evs.n} EV sessions; the model has room for {rows}")
        # Unused rows: no power (p_max 0), no need, no weight.
        p_max = _pad(evs.p_max_kw, rows)[layout.ev_of]
        arrival = _pad(evs.arrival_slot.astype(float), rows)[layout.ev_of]
        departure = _pad(evs.departure_slot.astype(float), rows)[layout.ev_of]
        knee = _pad(evs.knee_soc, rows, 1.0)[layout.ev_of]
        capacity = _pad(evs.capacity_kwh, rows, 1.0)[layout.ev_of]
        soc0 = _pad(evs.soc0, rows)[layout.ev_of]
        efficiency = _pad(evs.charger_efficiency, rows, 1.0)[layout.ev_of]
        slot = layout.slot_of
        in_window = (slot < t_used) & (slot >= arrival) & (slot < departure)
        # A taper row is redundant while the energy the session can have received by the end of
        # the slot, min(need, p_max * dt * slots since arrival), keeps its SOC at or below the
        # knee. Zeroing such rows lets presolve drop them; it halves MPC re-solve times.
        need = _pad(evs.e_needed_kwh, rows)[layout.ev_of]
        slots_in = np.maximum(slot - np.maximum(arrival, 0.0) + 1.0, 0.0)
        reachable = np.minimum(need, p_max * dt * slots_in)
        tapered = reachable > capacity * (knee - soc0)
        coef.update(
            ev_ub=np.where(in_window, p_max, 0.0),
            ev_dt=np.full(layout.n_entries, dt),
            taper_p=np.where(tapered, 1.0 - knee, 0.0),
            taper_e=np.where(tapered, p_max / capacity, 0.0),
            taper_rhs=np.where(tapered, p_max * (1.0 - soc0), 0.0),
            ev_inv_eff=1.0 / efficiency,
            e_need=_pad(evs.e_needed_kwh, rows),
            unmet_w=_pad(w.unmet_penalty_per_kwh * evs.priority.astype(float), rows),
        )
    if has_battery:
        battery = problem.battery
        if battery is None:
            coef.update(
                ch_max=np.zeros(horizon),
                dis_max=np.zeros(horizon),
                gain_ch=np.zeros(horizon),
                gain_dis=np.zeros(horizon),
                e0=0.0,
                e_lo=np.zeros(horizon),
                e_hi=np.zeros(horizon),
                w_deg=np.zeros(horizon),
                terminal=0.0,
            )
        else:
            e_lo, e_hi = battery.e_bounds_kwh
            coef.update(
                ch_max=_pad(np.full(t_used, battery.p_charge_max_kw), horizon),
                dis_max=_pad(np.full(t_used, battery.p_discharge_max_kw), horizon),
                gain_ch=np.full(horizon, battery.eta_charge * dt),
                gain_dis=np.full(horizon, dt / battery.eta_discharge),
                e0=battery.e0_kwh,
                e_lo=np.full(horizon, e_lo),
                e_hi=np.full(horizon, e_hi),
                w_deg=_pad(np.full(t_used, battery.degradation_cost_per_kwh * dt), horizon),
                terminal=problem.terminal_value_per_kwh(),
            )
    if n_grid:
        # Unused rows (and padded slots) get the always-satisfied -1 <= 0 * site <= 1.
        sens = np.zeros((n_grid, 1))
        upper = np.ones((n_grid, horizon))
        lower = -np.ones((n_grid, horizon))
        if grid is not None:
            m = grid.n_constraints
            if m > n_grid:
                raise OptimizationError(
                    f"grid constraint has {m} rows; the model was built for {n_grid}"
                )
            grid.check_slots(t_used)
            sens[:m, 0] = grid.sensitivity_per_kw
            upper[:m, :t_used] = grid.upper[:, None] - grid.base
            lower[:m, :t_used] = grid.lower[:, None] - grid.base
        coef.update(g_sens=sens, g_upper=upper, g_lower=lower)
    return coef


def _period_coefficients(
    problem: SiteProblem, horizon: int, n_periods: int | None
) -> dict[str, Any]:
    used = problem.n_periods
    rows = used if n_periods is None else n_periods
    if used > rows:
        raise OptimizationError(
            f"the horizon touches {used} billing periods; the model was built for {rows}. "
            f"Build it with max_billing_periods >= {used}"
        )
    period = np.full(horizon, used - 1, dtype=np.int64)
    period[: problem.n_slots] = problem.period_index()
    member = sp.csr_matrix((np.ones(horizon), (np.arange(horizon), period)), shape=(horizon, rows))
    return {
        "peak0": _pad(problem.peak_floor_kw(), rows),
        "period_of_slot": member if n_periods is None else member.toarray(),
    }


@dataclass(frozen=True)
class SiteLp:
    """A built site LP and its variables (battery/EV/grid entries are ``None`` when absent)."""

    problem: cp.Problem
    layout: EvLayout
    ev_power: cp.Variable | None
    pv_used: cp.Variable
    charge: cp.Variable | None
    discharge: cp.Variable | None


def build_site_lp(
    layout: EvLayout, has_battery: bool, n_grid: int, coef: Mapping[str, Any]
) -> SiteLp:
    """Build the LP over ``coef`` (Parameters or arrays, see :func:`coefficient_shapes`)."""
    t = layout.n_slots
    stepped = "step_dev" in coef
    pv_used = cp.Variable(t, nonneg=True, name="pv_used_kw")
    peak = cp.Variable(np.shape(coef["peak0"]), name="peak_kw")
    site: cp.Expression = coef["load"] - pv_used
    if stepped:
        objective: cp.Expression = coef["demand_charge"] * cp.sum(peak)
        constraints: list[cp.Constraint] = [
            pv_used <= coef["pv"],
            pv_used >= coef["pv_min"],
            peak >= coef["peak0"],
        ]
    else:
        imp = cp.Variable(t, nonneg=True, name="import_kw")
        exp = cp.Variable(t, nonneg=True, name="export_kw")
        s_imp = cp.Variable(t, nonneg=True, name="import_slack_kw")
        s_exp = cp.Variable(t, nonneg=True, name="export_slack_kw")
        objective = (
            coef["w_import"] @ imp
            - coef["w_export"] @ exp
            + coef["w_slack"] @ (s_imp + s_exp)
            + coef["demand_charge"] * cp.sum(peak)
        )
        constraints = [
            imp <= coef["import_max"] + s_imp,
            exp <= coef["export_max"] + s_exp,
            pv_used <= coef["pv"],
            pv_used >= coef["pv_min"],
            imp <= coef["period_of_slot"] @ peak,
            peak >= coef["peak0"],
        ]
    ev_power = None
    if layout.n_entries:
        diff, agg, select = layout.matrices()
        ev_power = cp.Variable(layout.n_entries, nonneg=True, name="ev_kw")
        ev_energy = cp.Variable(layout.n_entries, name="ev_energy_kwh")
        delivered = select @ ev_energy
        constraints += [
            ev_power <= coef["ev_ub"],
            diff @ ev_energy == cp.multiply(coef["ev_dt"], ev_power),
            cp.multiply(coef["taper_p"], ev_power) + cp.multiply(coef["taper_e"], ev_energy)
            <= coef["taper_rhs"],
            delivered <= coef["e_need"],
        ]
        site = site + agg @ cp.multiply(coef["ev_inv_eff"], ev_power)
        objective = objective - coef["unmet_w"] @ delivered
    charge = discharge = None
    if has_battery:
        charge = cp.Variable(t, nonneg=True, name="battery_charge_kw")
        discharge = cp.Variable(t, nonneg=True, name="battery_discharge_kw")
        energy = cp.Variable(t, name="battery_energy_kwh")
        step = cp.multiply(coef["gain_ch"], charge) - cp.multiply(coef["gain_dis"], discharge)
        constraints += [
            charge <= coef["ch_max"],
            discharge <= coef["dis_max"],
            energy[0] == coef["e0"] + step[0],
            energy >= coef["e_lo"],
            energy <= coef["e_hi"],
        ]
        if t > 1:
            constraints.append(energy[1:] == energy[:-1] + step[1:])
        site = site + charge - discharge
        objective = objective + coef["w_deg"] @ (charge + discharge)
        objective = objective - coef["terminal"] * energy[t - 1]
    if stepped:
        net, step_terms, step_constraints = _step_terms(t, coef, site, peak)
        objective = objective + step_terms
        constraints += step_constraints
    else:
        constraints.append(imp - exp == site)
        # imp - exp equals the site power and is parameter-free, which keeps sens @ site DPP.
        net = imp - exp
    if n_grid:
        s_grid = cp.Variable((n_grid, t), nonneg=True, name="grid_slack")
        response = coef["g_sens"] @ cp.reshape(net, (1, t), order="C")
        constraints += [
            response <= coef["g_upper"] + s_grid,
            response >= coef["g_lower"] - s_grid,
        ]
        objective = objective + cp.sum(s_grid @ coef["w_slack"])
    problem = cp.Problem(cp.Minimize(objective), constraints)
    return SiteLp(problem, layout, ev_power, pv_used, charge, discharge)


def _step_terms(
    t: int, coef: Mapping[str, Any], site: cp.Expression, peak: cp.Variable
) -> tuple[cp.Expression, cp.Expression, list[cp.Constraint]]:
    """Slot power, objective terms and constraints of the per-step import/export (arrays only)."""
    n_steps = int(np.shape(coef["step_dev"])[1])
    # Step k = t * n_steps + j belongs to slot t.
    expand = sp.csr_matrix(
        (np.ones(t * n_steps), (np.arange(t * n_steps), np.repeat(np.arange(t), n_steps))),
        shape=(t * n_steps, t),
    )
    imp = cp.Variable(t * n_steps, nonneg=True, name="step_import_kw")
    exp = cp.Variable(t * n_steps, nonneg=True, name="step_export_kw")
    s_imp = cp.Variable(t * n_steps, nonneg=True, name="step_import_slack_kw")
    s_exp = cp.Variable(t * n_steps, nonneg=True, name="step_export_slack_kw")
    net = cp.Variable(t, name="site_kw")
    step_import = imp + s_imp
    step_export = exp + s_exp
    objective = (
        np.ravel(coef["step_w_import"]) @ step_import
        - np.ravel(coef["step_w_export"]) @ step_export
        + coef["step_w_slack"] * cp.sum(s_imp + s_exp)
    )
    constraints = [
        net == site,
        step_import - step_export == expand @ net + np.ravel(coef["step_dev"]),
        imp <= coef["import_max"],
        exp <= coef["export_max"],
        (expand.T / n_steps) @ step_import <= coef["period_of_slot"] @ peak,
    ]
    return net, objective, constraints


def extract_plan(lp: SiteLp, problem: SiteProblem) -> Plan:
    """Read the solved setpoints for ``problem`` (padding dropped, solver noise clipped)."""
    t, n = problem.n_slots, problem.evs.n
    layout = lp.layout
    p_ev = np.zeros((layout.n_ev, layout.n_slots))
    if lp.ev_power is not None:
        p_ev[layout.ev_of, layout.slot_of] = np.maximum(np.asarray(lp.ev_power.value), 0.0)
    zeros = np.zeros(t)

    def value(var: cp.Variable | None) -> np.ndarray:
        return zeros.copy() if var is None else np.maximum(np.asarray(var.value)[:t], 0.0)

    pv_used = np.minimum(value(lp.pv_used), problem.pv_kw)
    if not problem.pv_curtailment_allowed:
        pv_used = problem.pv_kw.copy()
    return Plan(p_ev[:n, :t], value(lp.charge), value(lp.discharge), pv_used)


@dataclass(frozen=True)
class SolveOutcome:
    """Status of :func:`solve_with_fallback`."""

    status: str
    solver: str
    seconds: float
    fallback_reason: str | None


def _attempt(problem: cp.Problem, solver: str) -> tuple[str | None, str | None]:
    # HiGHS's default warm start makes DPP re-solves ~20x slower on these LPs.
    options: dict[str, Any] = {"warm_start": False} if solver == cp.HIGHS else {}
    try:
        problem.solve(solver=solver, verbose=False, **options)
    except cp.SolverError as exc:
        return None, f"{solver} failed: {exc}"
    if problem.status in _SOLVED:
        return problem.status, None
    return None, f"{solver} returned status {problem.status!r}"


def solve_with_fallback(
    problem: cp.Problem, solver: str = cp.HIGHS, fallback: str | None = cp.CLARABEL
) -> SolveOutcome:
    """Solve with ``solver`` (HiGHS without warm start), falling back to ``fallback``.

    Raises:
        OptimizationError: neither solver produced a solution.
    """
    start = time.perf_counter()
    status, reason = _attempt(problem, solver)
    used = solver
    if status is None and fallback is not None:
        status, second = _attempt(problem, fallback)
        used = fallback
        if status is None:
            reason = f"{reason}; {second}"
    seconds = time.perf_counter() - start
    if status is None:
        raise OptimizationError(f"site LP could not be solved: {reason}")
    return SolveOutcome(status, used, seconds, reason)
