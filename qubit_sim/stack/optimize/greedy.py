"""The Qubit greedy EV charging scheduler (L3 baseline).

Algorithm, as documented for the Qubit optimizer, with the choices the documentation leaves open:

1. Availability matrix session x slot: available slots are ``[max(arrival, 0), min(departure, T))``.
2. Effective cost per slot: ``cost_weight * price + carbon_weight * carbon_intensity``.
3. Sessions are served by priority (3 urgent, 2 high, 1 normal) descending, then by departure
   ascending, then by input order.
4. Each session fills its cheapest available slots (ties: earlier slot first) until its energy need
   is met.
5. Site headroom per slot starts at ``import_max_kw - (load_kw - pv_kw)`` - the site limit applies
   to the *net* load, so PV output makes room for charging - and each allocation deducts its
   grid-side power ``p_ev / charger_efficiency``.

Per slot a session gets ``min(p_max_kw, headroom * efficiency, remaining need / dt, taper bound)``.
The taper bound keeps the linear CC-CV limit ``p <= p_max * (1 - soc_end) / (1 - knee)`` true in
*every* slot of the session, including slots filled earlier: charging in an early slot raises the
SOC of all later ones, so each allocation is also capped by the smallest remaining taper slack
after it. Energy not delivered is reported per vehicle, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from qubit_sim.stack.optimize.plan import Plan, schedule_frame
from qubit_sim.stack.optimize.problem import SiteProblem

__all__ = ["GreedyResult", "greedy_ev_power_kw", "greedy_schedule", "pv_used_after_curtailment"]

_ENERGY_TOL_KWH = 1e-9


@dataclass(frozen=True)
class GreedyResult:
    """Output of :func:`greedy_schedule`.

    Attributes:
        schedule: Schedule table with ``ev_{id}_kw``, ``total_ev_kw``, ``total_ev_grid_kw``,
            ``background_load_kw``, ``solar_generation_kw``, ``pv_used_kw``, ``net_load_kw``,
            ``price_per_kwh``, ``slot_cost`` (see :func:`~qubit_sim.stack.optimize.plan.schedule_frame`).
        plan: The same setpoints as arrays (battery idle).
        unmet_kwh: Energy not delivered, by vehicle id [kWh].
        total_cost: Sum of ``slot_cost`` [currency].
    """

    schedule: pd.DataFrame
    plan: Plan
    unmet_kwh: pd.Series
    total_cost: float


def _fill_untapered(
    slots: np.ndarray,
    need_kwh: float,
    p_max_kw: float,
    eff: float,
    headroom_kw: np.ndarray,
    dt_h: float,
) -> np.ndarray:
    # The taper cannot bind when the session ends at or below the knee: fill in one vector pass.
    cap_kw = np.minimum(p_max_kw, np.maximum(headroom_kw[slots] * eff, 0.0))
    cap_kwh = cap_kw * dt_h
    before_kwh = np.cumsum(cap_kwh) - cap_kwh
    return np.clip(need_kwh - before_kwh, 0.0, cap_kwh) / dt_h


def _fill_tapered(
    slots: np.ndarray,
    first: int,
    width: int,
    need_kwh: float,
    p_max_kw: float,
    eff: float,
    coef_p: float,
    coef_e: float,
    rhs: float,
    headroom_kw: np.ndarray,
    dt_h: float,
) -> np.ndarray:
    # Constraint per window slot j: coef_p * p_j + coef_e * E_j <= rhs, E_j = energy by end of j.
    slack = np.full(width, rhs)
    power = np.zeros(slots.shape[0])
    remaining = need_kwh
    own = coef_p + coef_e * dt_h
    later_coef = coef_e * dt_h
    for k, slot in enumerate(slots):
        if remaining <= _ENERGY_TOL_KWH:
            break
        j = slot - first
        bound = min(p_max_kw, headroom_kw[slot] * eff, remaining / dt_h, slack[j] / own)
        if j + 1 < width:
            bound = min(bound, slack[j + 1 :].min() / later_coef)
        if bound <= 0.0:
            continue
        power[k] = bound
        slack[j] -= coef_p * bound
        slack[j:] -= later_coef * bound
        remaining -= bound * dt_h
    return power


def greedy_ev_power_kw(problem: SiteProblem) -> tuple[np.ndarray, np.ndarray]:
    """Greedy EV setpoints ``(N, T)`` [kW] and unmet energy per session ``(N,)`` [kWh]."""
    evs = problem.evs
    n_slots, dt_h = problem.n_slots, problem.dt_h
    power = np.zeros((evs.n, n_slots))
    unmet = evs.e_needed_kwh.copy()
    headroom = problem.import_max_kw - (problem.load_kw - problem.pv_kw)
    slot_order = np.argsort(problem.effective_cost_per_kwh(), kind="stable")
    session_order = np.lexsort((np.arange(evs.n), evs.departure_slot, -evs.priority))
    for i in session_order:
        first = max(int(evs.arrival_slot[i]), 0)
        stop = min(int(evs.departure_slot[i]), n_slots)
        need = float(evs.e_needed_kwh[i])
        p_max = float(evs.p_max_kw[i])
        if stop <= first or p_max <= 0.0 or need <= 0.0:
            continue
        slots = slot_order[(slot_order >= first) & (slot_order < stop)]
        eff = float(evs.charger_efficiency[i])
        soc0, knee = float(evs.soc0[i]), float(evs.knee_soc[i])
        if soc0 + need / evs.capacity_kwh[i] <= knee:
            alloc = _fill_untapered(slots, need, p_max, eff, headroom, dt_h)
        else:
            alloc = _fill_tapered(
                slots,
                first,
                stop - first,
                need,
                p_max,
                eff,
                coef_p=1.0 - knee,
                coef_e=p_max / float(evs.capacity_kwh[i]),
                rhs=p_max * (1.0 - soc0),
                headroom_kw=headroom,
                dt_h=dt_h,
            )
        power[i, slots] = alloc
        headroom[slots] -= alloc / eff
        unmet[i] = max(need - float(alloc.sum()) * dt_h, 0.0)
    return power, unmet


def pv_used_after_curtailment(problem: SiteProblem, site_before_pv_kw: np.ndarray) -> np.ndarray:
    """PV used [kW] by rule-based controllers: all of it, unless curtailment is allowed and the
    export would exceed ``export_max_kw``, in which case just enough is curtailed.

    Args:
        problem: The site problem.
        site_before_pv_kw: Site power without PV [kW].
    """
    if not problem.pv_curtailment_allowed:
        return problem.pv_kw.copy()
    export_excess = np.maximum(problem.pv_kw - site_before_pv_kw - problem.export_max_kw, 0.0)
    return problem.pv_kw - np.minimum(export_excess, problem.pv_kw)


def greedy_schedule(problem: SiteProblem) -> GreedyResult:
    """Run the greedy EV scheduler on ``problem`` (the battery, if any, stays idle)."""
    power, unmet = greedy_ev_power_kw(problem)
    zeros = np.zeros(problem.n_slots)
    ev_grid = (power / problem.evs.charger_efficiency[:, None]).sum(axis=0)
    pv_used = pv_used_after_curtailment(problem, problem.load_kw + ev_grid)
    plan = Plan(power, zeros, zeros.copy(), pv_used)
    schedule = schedule_frame(problem, plan, include_battery=False)
    return GreedyResult(
        schedule=schedule,
        plan=plan,
        unmet_kwh=pd.Series(unmet, index=pd.Index(problem.evs.ev_ids, name="ev_id")),
        total_cost=float(schedule["slot_cost"].sum()),
    )
