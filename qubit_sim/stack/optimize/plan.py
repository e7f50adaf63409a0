"""Plans, the one objective every controller is scored with, and the schedule table.

A :class:`Plan` is a set of setpoints per slot. :func:`evaluate_plan` applies the physics stated in
:mod:`qubit_sim.stack.optimize.problem` and prices the result with the problem's weights, so a greedy
plan, an MPC plan and the offline optimum are compared on exactly the same terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qubit_sim.stack.optimize.problem import LinearGridConstraint, OptimizationError, SiteProblem

__all__ = [
    "ObjectiveTerms",
    "OptimizationResult",
    "Plan",
    "battery_energy_kwh",
    "ev_delivered_kwh",
    "evaluate_plan",
    "schedule_frame",
    "site_power_kw",
]


@dataclass(frozen=True)
class Plan:
    """Setpoints per slot.

    Attributes:
        p_ev_kw: ``(N, T)`` power into each vehicle [kW].
        p_charge_kw: ``(T,)`` battery charging power, grid side [kW], >= 0.
        p_discharge_kw: ``(T,)`` battery discharging power, grid side [kW], >= 0.
        pv_used_kw: ``(T,)`` PV generation used [kW], magnitude, ``<= pv_kw``.
    """

    p_ev_kw: np.ndarray
    p_charge_kw: np.ndarray
    p_discharge_kw: np.ndarray
    pv_used_kw: np.ndarray

    @classmethod
    def idle(cls, problem: SiteProblem) -> Plan:
        """No EV charging, idle battery, all PV used."""
        t = problem.n_slots
        zeros = np.zeros(t)
        return cls(np.zeros((problem.evs.n, t)), zeros, zeros.copy(), problem.pv_kw.copy())

    def check_shapes(self, problem: SiteProblem) -> None:
        """Raise :class:`OptimizationError` unless the arrays match the problem's size."""
        t, n = problem.n_slots, problem.evs.n
        expected = {
            "p_ev_kw": (n, t),
            "p_charge_kw": (t,),
            "p_discharge_kw": (t,),
            "pv_used_kw": (t,),
        }
        for name, shape in expected.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise OptimizationError(f"plan {name} has shape {got}; expected {shape}")


@dataclass(frozen=True)
class ObjectiveTerms:
    """The objective of a plan, term by term.

    ``total = cost_weight * (energy_cost - export_revenue) + carbon_weight * emissions_g
    + demand_charge + degradation_cost + unmet_penalty - terminal_value + limit_penalty``.

    Attributes:
        energy_cost: Import energy cost [currency].
        export_revenue: Export remuneration [currency].
        emissions_g: Emissions of imported energy [gCO2].
        demand_charge: Charge on the import peak of each billing period, above
            ``peak_so_far_kw`` in the first [currency].
        degradation_cost: Battery throughput cost [currency].
        unmet_kwh: EV energy not delivered [kWh].
        unmet_penalty: Priority-weighted penalty on ``unmet_kwh``.
        terminal_value: Value of the change in stored battery energy.
        import_excess_kwh: Energy imported beyond ``import_max_kw`` [kWh].
        export_excess_kwh: Energy exported beyond ``export_max_kw`` [kWh].
        grid_violation: Grid-constraint violation integrated over time [unit h].
        limit_penalty: Penalty on the three violations above.
        total: The objective.
    """

    energy_cost: float
    export_revenue: float
    emissions_g: float
    demand_charge: float
    degradation_cost: float
    unmet_kwh: float
    unmet_penalty: float
    terminal_value: float
    import_excess_kwh: float
    export_excess_kwh: float
    grid_violation: float
    limit_penalty: float
    total: float

    def as_dict(self) -> dict[str, float]:
        """Terms as a plain dict."""
        return dict(self.__dict__)


def site_power_kw(problem: SiteProblem, plan: Plan) -> np.ndarray:
    """Site power per slot [kW], load convention."""
    ev_grid = (plan.p_ev_kw / problem.evs.charger_efficiency[:, None]).sum(axis=0)
    return problem.load_kw + ev_grid + plan.p_charge_kw - plan.p_discharge_kw - plan.pv_used_kw


def battery_energy_kwh(problem: SiteProblem, plan: Plan) -> np.ndarray:
    """Stored battery energy at the end of each slot [kWh] (zeros without a battery)."""
    battery = problem.battery
    if battery is None:
        return np.zeros(problem.n_slots)
    step = (
        plan.p_charge_kw * battery.eta_charge - plan.p_discharge_kw / battery.eta_discharge
    ) * problem.dt_h
    return battery.e0_kwh + np.cumsum(step)


def ev_delivered_kwh(problem: SiteProblem, plan: Plan) -> np.ndarray:
    """Energy delivered into each vehicle over the horizon [kWh]."""
    return plan.p_ev_kw.sum(axis=1) * problem.dt_h


def evaluate_plan(
    problem: SiteProblem, plan: Plan, grid: LinearGridConstraint | None = None
) -> ObjectiveTerms:
    """Score ``plan`` with the problem's objective.

    Delivered EV energy above the need is not rewarded (it counts as zero unmet energy). Import and
    export are the positive and negative parts of the site power, per step with
    :class:`~qubit_sim.stack.optimize.problem.IntraSlot` (then the demand peak is the slot's mean
    step import and the limits hold per step).
    """
    plan.check_shapes(problem)
    w = problem.weights
    dt = problem.dt_h
    site = site_power_kw(problem, plan)
    intra = problem.intra_slot
    if intra is None:
        step_dt = dt
        imp_steps = np.maximum(site, 0.0)
        exp_steps = np.maximum(-site, 0.0)
        energy_cost = float(problem.price_per_kwh @ imp_steps * dt)
        export_revenue = float(problem.export_price_per_kwh @ exp_steps * dt)
        emissions_g = float(problem.carbon_g_per_kwh @ imp_steps * dt)
        imp = imp_steps
    else:
        steps = problem.step_power_kw(site)
        step_dt = dt / intra.n_steps
        imp_steps = np.maximum(steps, 0.0)
        exp_steps = np.maximum(-steps, 0.0)
        energy_cost = float(np.sum(intra.price_per_kwh * imp_steps) * step_dt)
        export_revenue = float(np.sum(intra.export_price_per_kwh * exp_steps) * step_dt)
        emissions_g = float(np.sum(intra.carbon_g_per_kwh * imp_steps) * step_dt)
        imp = imp_steps.mean(axis=1)
    period_peaks = np.zeros(problem.n_periods)
    np.maximum.at(period_peaks, problem.period_index(), imp)
    increase = np.maximum(period_peaks - problem.peak_floor_kw(), 0.0)
    demand = w.demand_charge_per_kw * float(increase.sum())
    degradation = 0.0
    terminal = 0.0
    if problem.battery is not None:
        throughput = float((plan.p_charge_kw + plan.p_discharge_kw).sum() * dt)
        degradation = problem.battery.degradation_cost_per_kwh * throughput
        e_end = float(battery_energy_kwh(problem, plan)[-1])
        terminal = problem.terminal_value_per_kwh() * (e_end - problem.battery.e0_kwh)
    unmet = np.maximum(problem.evs.e_needed_kwh - ev_delivered_kwh(problem, plan), 0.0)
    unmet_penalty = float(w.unmet_penalty_per_kwh * (problem.evs.priority @ unmet))
    import_excess = float(np.maximum(imp_steps - problem.import_max_kw, 0.0).sum() * step_dt)
    export_excess = float(np.maximum(exp_steps - problem.export_max_kw, 0.0).sum() * step_dt)
    grid_violation = 0.0
    if grid is not None:
        grid.check_slots(problem.n_slots)
        grid_violation = float(grid.violation(site).sum() * dt)
    limit_penalty = w.limit_penalty_per_kwh * (import_excess + export_excess + grid_violation)
    total = (
        w.cost_weight * (energy_cost - export_revenue)
        + w.carbon_weight * emissions_g
        + demand
        + degradation
        + unmet_penalty
        - terminal
        + limit_penalty
    )
    return ObjectiveTerms(
        energy_cost=energy_cost,
        export_revenue=export_revenue,
        emissions_g=emissions_g,
        demand_charge=float(demand),
        degradation_cost=float(degradation),
        unmet_kwh=float(unmet.sum()),
        unmet_penalty=unmet_penalty,
        terminal_value=float(terminal),
        import_excess_kwh=import_excess,
        export_excess_kwh=export_excess,
        grid_violation=grid_violation,
        limit_penalty=float(limit_penalty),
        total=float(total),
    )


def schedule_frame(problem: SiteProblem, plan: Plan, include_battery: bool) -> pd.DataFrame:
    """The L3 schedule table, indexed by slot start (UTC).

    Columns: ``ev_{id}_kw`` (power into each vehicle), ``total_ev_kw`` (their sum),
    ``total_ev_grid_kw`` (grid side, after charger losses), ``background_load_kw``,
    ``solar_generation_kw`` (available), ``pv_used_kw``, with a battery ``battery_charge_kw``,
    ``battery_discharge_kw``, ``battery_soc_kwh`` (end of slot), then ``net_load_kw`` (site power:
    background + EV grid side + battery charge - discharge - PV used), ``price_per_kwh`` and
    ``slot_cost`` (import cost minus export revenue of the slot, summed over its steps with
    intra-slot steps) [kW, kWh, currency].
    """
    columns: dict[str, np.ndarray] = {
        f"ev_{ev_id}_kw": plan.p_ev_kw[i] for i, ev_id in enumerate(problem.evs.ev_ids)
    }
    columns["total_ev_kw"] = plan.p_ev_kw.sum(axis=0)
    columns["total_ev_grid_kw"] = (plan.p_ev_kw / problem.evs.charger_efficiency[:, None]).sum(
        axis=0
    )
    columns["background_load_kw"] = problem.load_kw
    columns["solar_generation_kw"] = problem.pv_kw
    columns["pv_used_kw"] = plan.pv_used_kw
    if include_battery:
        columns["battery_charge_kw"] = plan.p_charge_kw
        columns["battery_discharge_kw"] = plan.p_discharge_kw
        columns["battery_soc_kwh"] = battery_energy_kwh(problem, plan)
    site = site_power_kw(problem, plan)
    columns["net_load_kw"] = site
    columns["price_per_kwh"] = problem.price_per_kwh
    intra = problem.intra_slot
    if intra is None:
        columns["slot_cost"] = (
            problem.price_per_kwh * np.maximum(site, 0.0)
            - problem.export_price_per_kwh * np.maximum(-site, 0.0)
        ) * problem.dt_h
    else:
        steps = problem.step_power_kw(site)
        columns["slot_cost"] = (
            intra.price_per_kwh * np.maximum(steps, 0.0)
            - intra.export_price_per_kwh * np.maximum(-steps, 0.0)
        ).sum(axis=1) * (problem.dt_h / intra.n_steps)
    return pd.DataFrame(columns, index=problem.times_utc.rename("time_utc"))


@dataclass(frozen=True)
class OptimizationResult:
    """What the LP optimisers return.

    Attributes:
        schedule: The schedule table (:func:`schedule_frame`).
        plan: The setpoints.
        objective: The plan scored with :func:`evaluate_plan`.
        unmet_kwh: EV energy not delivered, by vehicle id [kWh].
        status: Solver status (``"optimal"`` or ``"optimal_inaccurate"``).
        solver: Solver that produced the plan.
        solve_time_s: Wall time of cvxpy's solve call(s): problem-data mapping plus solver, and
            the compile on a fresh model [s].
        fallback_reason: Why the primary solver was not used, if it was not.
    """

    schedule: pd.DataFrame
    plan: Plan
    objective: ObjectiveTerms
    unmet_kwh: pd.Series
    status: str
    solver: str
    solve_time_s: float
    fallback_reason: str | None = field(default=None)

    @property
    def limits_relaxed(self) -> bool:
        """True when an import/export/grid limit had to be exceeded."""
        o = self.objective
        return (o.import_excess_kwh + o.export_excess_kwh + o.grid_violation) > 1e-6
