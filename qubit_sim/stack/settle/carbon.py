"""Carbon accounts of a run: emissions of grid imports and emissions avoided on site.

With ``ci`` the grid carbon intensity of a step [gCO2/kWh] and energies of the step [kWh]:

* **grid import emissions** = import x ci;
* **PV self-consumption, avoided** = (PV produced - PV exported) x ci, where PV exported is the
  site's export up to the PV production of the step (the rest of the export came from a battery);
* **battery time-shifting, avoided** = -(battery energy) x ci, battery energy in load convention
  (charging positive). Charging at low and discharging at high intensity avoids emissions; round
  trip losses at a constant intensity count as emissions (a negative avoided amount);
* **per charging session**: the charger's grid energy x ci over the session's steps; for an
  outside charge point without a twin, its registers' energy x the mean ci over the session's
  steps (flagged ``external``).

Amounts are kg CO2, per billing period and in total.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CARBON_FIELDS", "carbon_accounts"]

CARBON_FIELDS = (
    "grid_import_kwh",
    "grid_import_kg",
    "pv_produced_kwh",
    "pv_self_consumed_kwh",
    "pv_self_consumption_avoided_kg",
    "battery_net_kwh",
    "battery_shift_avoided_kg",
)


def _accounts(
    import_kwh: np.ndarray,
    pv_kwh: np.ndarray,
    self_kwh: np.ndarray,
    battery_kwh: np.ndarray,
    ci: np.ndarray,
) -> dict[str, float]:
    return {
        "grid_import_kwh": float(import_kwh.sum()),
        "grid_import_kg": float((import_kwh * ci).sum() / 1000.0),
        "pv_produced_kwh": float(pv_kwh.sum()),
        "pv_self_consumed_kwh": float(self_kwh.sum()),
        "pv_self_consumption_avoided_kg": float((self_kwh * ci).sum() / 1000.0),
        "battery_net_kwh": float(battery_kwh.sum()),
        "battery_shift_avoided_kg": float(-(battery_kwh * ci).sum() / 1000.0),
    }


def carbon_accounts(
    *,
    step_s: int,
    periods: np.ndarray,
    import_kw: np.ndarray,
    export_kw: np.ndarray,
    pv_kw: np.ndarray,
    battery_kw: np.ndarray,
    carbon_g_per_kwh: np.ndarray,
    sessions: pd.DataFrame,
) -> dict[str, Any]:
    """Carbon accounts (module doc) as a JSON-ready dict.

    Args:
        step_s: Step length [s].
        periods: Billing-period label of each step.
        import_kw: Site meter import per step [kW] >= 0.
        export_kw: Site meter export per step [kW] >= 0.
        pv_kw: Total PV power per step [kW], load convention (<= 0).
        battery_kw: Total battery power per step [kW], load convention.
        carbon_g_per_kwh: Grid carbon intensity per step [gCO2/kWh].
        sessions: Metered sessions with ``session_id``, ``charger_id``, ``vehicle_id``,
            ``is_open``, ``wh_twin`` and ``co2_kg`` (and optionally ``external`` and
            ``wh_metered``)
            (:func:`~qubit_sim.stack.settle.metering.metered_sessions`).

    Returns:
        ``{"units", "total", "periods", "sessions"}``: totals and per-period accounts with the
        fields :data:`CARBON_FIELDS`, and per session its energy [kWh], emissions [kg] and mean
        intensity [gCO2/kWh].
    """
    hours = step_s / 3600.0
    ci = np.asarray(carbon_g_per_kwh, dtype=float)
    import_kwh = np.asarray(import_kw, dtype=float) * hours
    produced_kw = np.clip(-np.asarray(pv_kw, dtype=float), 0.0, None)
    pv_export_kw = np.minimum(np.clip(np.asarray(export_kw, dtype=float), 0.0, None), produced_kw)
    pv_kwh = produced_kw * hours
    self_kwh = (produced_kw - pv_export_kw) * hours
    battery_kwh = np.asarray(battery_kw, dtype=float) * hours
    labels = np.asarray(periods, dtype=object)
    per_period = []
    for label in dict.fromkeys(labels.tolist()):
        mask = labels == label
        per_period.append(
            {
                "period": label,
                **_accounts(
                    import_kwh[mask], pv_kwh[mask], self_kwh[mask], battery_kwh[mask], ci[mask]
                ),
            }
        )
    per_session = []
    for row in sessions.itertuples(index=False):
        external = bool(getattr(row, "external", False))
        # Without a twin, the registers are the only measure of the session's energy.
        e_kwh = float(row.wh_metered if external else row.wh_twin) / 1000.0
        co2_kg = float(row.co2_kg)
        per_session.append(
            {
                "session_id": str(row.session_id),
                "charger_id": str(row.charger_id),
                "vehicle_id": row.vehicle_id,
                "open": bool(row.is_open),
                "external": external,
                "energy_kwh": e_kwh,
                "co2_kg": co2_kg,
                "intensity_g_per_kwh": co2_kg * 1000.0 / e_kwh if e_kwh > 0 else None,
            }
        )
    return {
        "units": {"energy": "kWh", "emissions": "kg CO2", "intensity": "g CO2/kWh"},
        "total": _accounts(import_kwh, pv_kwh, self_kwh, battery_kwh, ci),
        "periods": per_period,
        "sessions": per_session,
    }
