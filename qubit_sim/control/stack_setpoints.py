"""Plans to setpoints: what each device is told for one slot of a plan.

* Charger ``i``: the limit at its *grid* terminal, the planned EV-side power of the session plugged
  there (``obs.charger_session[i]``) over the charger's efficiency; 0 when empty or when the
  session is not in the plan.
* Batteries: the aggregate charge - discharge (load convention), split over the batteries in
  proportion to each one's feasible range this step.
* PV: NaN (no curtailment) unless the plan uses less PV than it expected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qubit_sim.control.base import Observation, Setpoints
from qubit_sim.control.stack_sessions import SessionRows
from qubit_sim.stack.optimize import Plan

if TYPE_CHECKING:  # pragma: no cover
    from qubit_sim.control.stack_site import StackSite

__all__ = [
    "battery_setpoints_kw",
    "charger_setpoints_kw",
    "plan_setpoints",
    "pv_setpoints_kw",
    "tracking_battery_kw",
]

_KW_TOL = 1e-6


def charger_setpoints_kw(
    p_ev_kw: np.ndarray, row_of_charger: np.ndarray, efficiency: np.ndarray
) -> np.ndarray:
    """Grid-terminal limit of each charger [kW]: the planned EV-side power of the row plugged
    there over the charger's efficiency; 0 for empty chargers and rows not in the plan."""
    row_of_charger = np.asarray(row_of_charger, dtype=np.int64)
    out = np.zeros(row_of_charger.shape[0])
    plugged = row_of_charger >= 0
    out[plugged] = (
        np.maximum(np.asarray(p_ev_kw)[row_of_charger[plugged]], 0.0)
        / np.asarray(efficiency)[plugged]
    )
    return out


def battery_setpoints_kw(net_kw: float, obs: Observation, capacity_kwh: np.ndarray) -> np.ndarray:
    """Split the aggregate battery power [kW] (load convention) over the batteries in proportion
    to each one's feasible range in that direction this step (capacity when none has room)."""
    n = len(capacity_kwh)
    if n == 0:
        return np.zeros(0)
    if n == 1:
        return np.array([net_kw])
    room = (
        np.maximum(obs.battery_p_max_kw, 0.0)
        if net_kw >= 0
        else np.maximum(-obs.battery_p_min_kw, 0.0)
    )
    weights = room if room.sum() > 0 else np.asarray(capacity_kwh, dtype=float)
    return net_kw * weights / weights.sum()


def pv_setpoints_kw(
    pv_used_kw: float, pv_planned_kw: float, pv_available_kw: np.ndarray
) -> np.ndarray:
    """PV limit per plant [kW]: NaN (no curtailment) unless the plan uses less PV than it
    expected, then the planned total shared in proportion to each plant's output now."""
    n = len(pv_available_kw)
    if n == 0 or pv_used_kw >= pv_planned_kw - _KW_TOL:
        return np.full(n, np.nan)
    available = np.maximum(np.asarray(pv_available_kw, dtype=float), 0.0)
    share = available / available.sum() if available.sum() > 0 else np.full(n, 1.0 / n)
    return max(pv_used_kw, 0.0) * share


def tracking_battery_kw(
    site: StackSite, plan: Plan, slot: int, planned_start_kwh: float, stored_kwh: float
) -> float:
    """Aggregate battery power [kW] (load convention) that ends slot ``slot`` on the plan's
    stored energy from ``stored_kwh`` now, where the plan expected ``planned_start_kwh``."""
    battery = site.battery
    if battery is None:
        return 0.0
    dt_h = site.dt_h
    planned = (
        plan.p_charge_kw[slot] * battery.eta_charge
        - plan.p_discharge_kw[slot] / battery.eta_discharge
    ) * dt_h
    wanted = float(planned + planned_start_kwh - stored_kwh)
    if wanted >= 0:
        return wanted / (battery.eta_charge * dt_h)
    return wanted * battery.eta_discharge / dt_h


def plan_setpoints(
    site: StackSite,
    plan: Plan,
    slot: int,
    rows: SessionRows,
    obs: Observation,
    pv_planned_kw: float,
    battery_net_kw: float | None = None,
) -> Setpoints:
    """Setpoints of ``plan``'s slot ``slot`` for the devices as observed in ``obs``.

    ``battery_net_kw`` overrides the plan's aggregate battery power (see
    :func:`tracking_battery_kw`).
    """
    charger_kw = charger_setpoints_kw(
        plan.p_ev_kw[:, slot] if rows.n else np.zeros(0),
        rows.row_of_charger(obs.charger_session),
        site.charger_efficiency,
    )
    net = float(plan.p_charge_kw[slot] - plan.p_discharge_kw[slot])
    if battery_net_kw is not None:
        net = float(battery_net_kw)
    battery_kw = battery_setpoints_kw(net, obs, site.battery_capacity_kwh)
    pv_limit = pv_setpoints_kw(float(plan.pv_used_kw[slot]), pv_planned_kw, obs.pv_available_kw)
    return Setpoints(charger_kw=charger_kw, battery_kw=battery_kw, pv_limit_kw=pv_limit)
