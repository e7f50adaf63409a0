"""The Qubit two-pass peak-shaving battery dispatch (L3 baseline).

* Net load before = forecast load (plus any ``extra_load_kw``, e.g. scheduled EV charging, grid
  side) minus forecast solar.
* Target: ``peak_target_kw`` or, when ``None``, the 80th percentile of the net load before
  (numpy's linear interpolation) - "shave the top 20 %". The documentation says "forecast load";
  the net load is used because it is what the site meter sees and what the battery must shave.
* Pass 1 (discharge): forward through the slots; where the net load exceeds the target, discharge
  ``min(excess, p_discharge_max, available energy * eta_discharge / dt)`` with the available energy
  above the lower SOC bound.
* Pass 2 (charge): the stored energy removed in pass 1 is put back in the cheapest slots (ties:
  earlier first) that are below the target and had no discharge, at most up to the target (no new
  peak), the site import limit and the charge rate, and never above the upper SOC bound in any later
  slot.
* Re-check: the SOC trajectory is re-simulated forward with both passes' setpoints. A setpoint that
  would leave the SOC window is clipped, and a slot still above target discharges again if pass-2
  recharge made energy available. The returned setpoints are therefore feasible by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from qubit_sim.stack.optimize.greedy import greedy_ev_power_kw, pv_used_after_curtailment
from qubit_sim.stack.optimize.plan import Plan
from qubit_sim.stack.optimize.problem import BatteryParams, OptimizationError, SiteProblem

__all__ = [
    "PeakShavingResult",
    "auto_peak_target_kw",
    "peak_shaving",
    "qubit_baseline_plan",
]

_AUTO_TARGET_PERCENTILE = 80.0
_TOL = 1e-12


@dataclass(frozen=True)
class PeakShavingResult:
    """Output of :func:`peak_shaving`.

    Attributes:
        schedule: Columns ``load_forecast_kw``, ``solar_forecast_kw``, ``net_load_before_kw``,
            ``battery_charge_kw``, ``battery_discharge_kw``, ``battery_soc_kwh`` (end of slot),
            ``battery_soc_percent``, ``net_load_after_kw``, ``peak_target_kw``, ``price_per_kwh``,
            ``slot_cost_before``, ``slot_cost_after`` [kW, kWh, %, currency].
        p_charge_kw: Charging setpoints, grid side [kW].
        p_discharge_kw: Discharging setpoints, grid side [kW].
        peak_target_kw: Target used [kW].
        peak_before_kw: Highest net load before [kW].
        peak_after_kw: Highest net load after [kW].
    """

    schedule: pd.DataFrame
    p_charge_kw: np.ndarray
    p_discharge_kw: np.ndarray
    peak_target_kw: float
    peak_before_kw: float
    peak_after_kw: float


def auto_peak_target_kw(net_load_kw: np.ndarray) -> float:
    """Default target: the 80th percentile of the forecast net load [kW]."""
    return float(np.percentile(np.asarray(net_load_kw, dtype=float), _AUTO_TARGET_PERCENTILE))


def _discharge_pass(
    net: np.ndarray, target: float, battery: BatteryParams, dt_h: float
) -> np.ndarray:
    e_lo, _ = battery.e_bounds_kwh
    energy = battery.e0_kwh
    p_dis = np.zeros(net.shape[0])
    for t in np.flatnonzero(net > target):
        available = max(energy - e_lo, 0.0) * battery.eta_discharge / dt_h
        p_dis[t] = min(net[t] - target, battery.p_discharge_max_kw, available)
        energy -= p_dis[t] * dt_h / battery.eta_discharge
    return p_dis


def _charge_pass(
    net: np.ndarray,
    p_dis: np.ndarray,
    price: np.ndarray,
    limit_kw: float,
    battery: BatteryParams,
    dt_h: float,
) -> np.ndarray:
    _, e_hi = battery.e_bounds_kwh
    removed = p_dis * dt_h / battery.eta_discharge
    to_restore = float(removed.sum())
    energy_end = battery.e0_kwh - np.cumsum(removed)
    p_ch = np.zeros(net.shape[0])
    candidates = np.flatnonzero((net < limit_kw) & (p_dis <= 0.0))
    for t in candidates[np.argsort(price[candidates], kind="stable")]:
        if to_restore <= _TOL:
            break
        room_kwh = min(battery.p_charge_max_kw, limit_kw - net[t]) * dt_h * battery.eta_charge
        stored = min(room_kwh, float((e_hi - energy_end[t:]).min()), to_restore)
        if stored <= 0.0:
            continue
        p_ch[t] = stored / (dt_h * battery.eta_charge)
        energy_end[t:] += stored
        to_restore -= stored
    return p_ch


def _recheck(
    net: np.ndarray,
    target: float,
    p_ch: np.ndarray,
    p_dis: np.ndarray,
    battery: BatteryParams,
    dt_h: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e_lo, e_hi = battery.e_bounds_kwh
    eta_c, eta_d = battery.eta_charge, battery.eta_discharge
    p_ch, p_dis = p_ch.copy(), p_dis.copy()
    energy_end = np.empty(net.shape[0])
    energy = battery.e0_kwh
    for t in range(net.shape[0]):
        if p_ch[t] > 0.0:
            p_ch[t] = min(p_ch[t], max(e_hi - energy, 0.0) / (eta_c * dt_h))
        elif net[t] > target:
            available = max(energy - e_lo, 0.0) * eta_d / dt_h
            p_dis[t] = min(net[t] - target, battery.p_discharge_max_kw, available)
        energy += (p_ch[t] * eta_c - p_dis[t] / eta_d) * dt_h
        energy_end[t] = energy
    return p_ch, p_dis, energy_end


def peak_shaving(
    problem: SiteProblem,
    *,
    extra_load_kw: np.ndarray | None = None,
    peak_target_kw: float | None = None,
) -> PeakShavingResult:
    """Two-pass peak-shaving dispatch of ``problem.battery``.

    Args:
        problem: Site problem; must have a battery.
        extra_load_kw: Load added to the forecast load, grid side [kW] (e.g. planned EV charging).
        peak_target_kw: Net-load target [kW]; ``None`` uses :func:`auto_peak_target_kw`.

    Raises:
        OptimizationError: the problem has no battery, or ``extra_load_kw`` has the wrong length.
    """
    battery = problem.battery
    if battery is None:
        raise OptimizationError("peak_shaving needs a battery; the problem has battery=None")
    load = problem.load_kw.copy()
    if extra_load_kw is not None:
        extra = np.asarray(extra_load_kw, dtype=float)
        if extra.shape != load.shape:
            raise OptimizationError(
                f"extra_load_kw has shape {extra.shape}; expected {load.shape} (one per slot)"
            )
        load = load + extra
    dt_h = problem.dt_h
    net_before = load - problem.pv_kw
    target = auto_peak_target_kw(net_before) if peak_target_kw is None else float(peak_target_kw)
    p_dis = _discharge_pass(net_before, target, battery, dt_h)
    charge_limit = min(target, problem.import_max_kw)
    p_ch = _charge_pass(net_before, p_dis, problem.price_per_kwh, charge_limit, battery, dt_h)
    p_ch, p_dis, energy_end = _recheck(net_before, target, p_ch, p_dis, battery, dt_h)
    net_after = net_before + p_ch - p_dis

    def slot_cost(net: np.ndarray) -> np.ndarray:
        return (
            problem.price_per_kwh * np.maximum(net, 0.0)
            - problem.export_price_per_kwh * np.maximum(-net, 0.0)
        ) * dt_h

    schedule = pd.DataFrame(
        {
            "load_forecast_kw": load,
            "solar_forecast_kw": problem.pv_kw,
            "net_load_before_kw": net_before,
            "battery_charge_kw": p_ch,
            "battery_discharge_kw": p_dis,
            "battery_soc_kwh": energy_end,
            "battery_soc_percent": 100.0 * energy_end / battery.capacity_kwh,
            "net_load_after_kw": net_after,
            "peak_target_kw": np.full(problem.n_slots, target),
            "price_per_kwh": problem.price_per_kwh,
            "slot_cost_before": slot_cost(net_before),
            "slot_cost_after": slot_cost(net_after),
        },
        index=problem.times_utc.rename("time_utc"),
    )
    return PeakShavingResult(
        schedule=schedule,
        p_charge_kw=p_ch,
        p_discharge_kw=p_dis,
        peak_target_kw=target,
        peak_before_kw=float(net_before.max()),
        peak_after_kw=float(net_after.max()),
    )


def qubit_baseline_plan(problem: SiteProblem, peak_target_kw: float | None = None) -> Plan:
    """The documented Qubit stack as one plan: greedy EV schedule, then two-pass peak shaving of
    the resulting net load (when there is a battery), then rule-based PV curtailment."""
    p_ev, _ = greedy_ev_power_kw(problem)
    ev_grid = (p_ev / problem.evs.charger_efficiency[:, None]).sum(axis=0)
    zeros = np.zeros(problem.n_slots)
    p_ch, p_dis = zeros, zeros.copy()
    if problem.battery is not None:
        shaved = peak_shaving(problem, extra_load_kw=ev_grid, peak_target_kw=peak_target_kw)
        p_ch, p_dis = shaved.p_charge_kw, shaved.p_discharge_kw
    pv_used = pv_used_after_curtailment(problem, problem.load_kw + ev_grid + p_ch - p_dis)
    return Plan(p_ev, p_ch, p_dis, pv_used)
