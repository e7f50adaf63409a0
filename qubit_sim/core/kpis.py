"""Key performance indicators of a run, computed from its recorded time series."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["compute_kpis"]


def compute_kpis(
    df: Any,
    *,
    step_s: int,
    tariff: Any,
    tz: str,
    sessions_needed_kwh: np.ndarray,
    sessions_delivered_kwh: np.ndarray,
    sessions_rejected: np.ndarray,
    battery_throughput_kwh: float,
    battery_energy_change_kwh: float,
    energy_balance_error_kwh: float,
    import_limit_kw: float,
    export_limit_kw: float,
    voltage_limits_pu: tuple[float, float] = (0.95, 1.05),
    loading_limit_pct: float = 100.0,
    unmet_penalty_per_kwh: float = 0.0,
    degradation_cost: float = 0.0,
    battery_eta_discharge: float = 1.0,
    extra: dict[str, float] | None = None,
    sessions_open_at_end: np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """KPIs of a run (energies [kWh], powers [kW], money in the tariff currency, CO2 [kg]).

    ``df`` is the run's time series (columns as written by the simulation). Demand charges apply to
    each billing period the run touches, on that period's peak 15-min average import.

    ``objective_cost`` is what every controller is judged by, so none can look cheap by not
    charging EVs or by draining the battery::

        objective_cost = total_cost
                         + unmet EV energy x unmet_penalty_per_kwh
                         + battery degradation cost (throughput x cost per kWh)
                         - change of stored battery energy x terminal value

    where the terminal value of a stored kWh is the run's mean import price times the discharge
    efficiency (what that kWh would save if discharged later at an average price), the same for
    every controller. Stored energy gained counts in a controller's favour, energy lost against it.

    ``ev_energy_unmet_at_end_kwh`` is the part of the unmet energy owed to EVs still plugged in when
    the run ends (``sessions_open_at_end``, a mask over the sessions; ``None`` without it): energy
    that a controller deferring charging past the end is charged only the penalty for.
    """
    from qubit_sim.core.tariff import demand_peaks_kw

    hours = step_s / 3600.0
    imp = df["grid_import_kw"].to_numpy()
    exp = df["grid_export_kw"].to_numpy()
    price = df["price_per_kwh"].to_numpy()
    export_price = df["export_price_per_kwh"].to_numpy()
    carbon = df["carbon_g_per_kwh"].to_numpy()
    energy_cost = float((imp * price).sum() * hours)
    export_credit = float((exp * export_price).sum() * hours)
    peaks = demand_peaks_kw(
        imp, step_s, df["time"], tz, tariff.billing_period, tariff.demand_window_s
    )
    demand_charge = float(peaks["peak_kw"].sum() * tariff.demand_charge_per_kw)
    total_cost = energy_cost + demand_charge - export_credit
    terminal_value_per_kwh = float(price.mean()) * battery_eta_discharge if len(price) else 0.0

    pv_generated = float(-df["pv_kw"].to_numpy().sum() * hours)
    grid_export_kwh = float(exp.sum() * hours)
    needed = float(np.sum(sessions_needed_kwh))
    delivered = float(np.sum(sessions_delivered_kwh))
    short = np.maximum(np.asarray(sessions_needed_kwh) - np.asarray(sessions_delivered_kwh), 0.0)
    unmet = float(np.sum(short))
    open_at_end = (
        float(np.sum(short[np.asarray(sessions_open_at_end, dtype=bool)]))
        if sessions_open_at_end is not None
        else None
    )

    kpis: dict[str, float | int | None] = {
        "energy_cost": energy_cost,
        "demand_charge": demand_charge,
        "export_credit": export_credit,
        "total_cost": total_cost,
        "objective_cost": total_cost
        + unmet * unmet_penalty_per_kwh
        + degradation_cost
        - battery_energy_change_kwh * terminal_value_per_kwh,
        "battery_degradation_cost": degradation_cost,
        "battery_terminal_value_per_kwh": terminal_value_per_kwh,
        "grid_import_kwh": float(imp.sum() * hours),
        "grid_export_kwh": grid_export_kwh,
        "peak_import_kw": float(imp.max()) if len(imp) else 0.0,
        "peak_import_15min_kw": float(peaks["peak_kw"].max()) if len(peaks) else 0.0,
        "peak_export_kw": float(exp.max()) if len(exp) else 0.0,
        "import_limit_violation_steps": int((imp > import_limit_kw + 1e-9).sum()),
        "export_limit_violation_steps": int((exp > export_limit_kw + 1e-9).sum()),
        "load_energy_kwh": float(df["load_kw"].to_numpy().sum() * hours),
        "ev_sessions": int(len(sessions_needed_kwh)),
        "ev_sessions_rejected": int(np.sum(sessions_rejected)),
        "ev_energy_requested_kwh": needed,
        "ev_energy_delivered_kwh": delivered,
        "ev_energy_unmet_kwh": unmet,
        "ev_energy_unmet_at_end_kwh": open_at_end,
        "ev_charger_energy_kwh": float(df["ev_p_kw"].to_numpy().sum() * hours),
        "pv_energy_kwh": pv_generated + 0.0,
        "pv_available_kwh": float(df["pv_available_kw"].to_numpy().sum() * hours),
        # Per step, export counts as PV only up to what the PV produced (the rest came from a
        # discharging battery), as settlement's PV certificates count it.
        "pv_self_consumption_ratio": (
            float(
                np.clip(
                    1.0
                    - float(np.minimum(exp, np.clip(-df["pv_kw"].to_numpy(), 0.0, None)).sum())
                    * hours
                    / pv_generated,
                    0.0,
                    1.0,
                )
            )
            if pv_generated > 1e-9
            else None
        ),
        "battery_throughput_kwh": battery_throughput_kwh,
        "battery_energy_change_kwh": battery_energy_change_kwh,
        "co2_kg": float((imp * carbon).sum() * hours / 1000.0),
        "energy_balance_error_kwh": abs(energy_balance_error_kwh),
    }
    if "grid_vm_min_pu" in df:
        low, high = voltage_limits_pu
        vmin = df["grid_vm_min_pu"].to_numpy()
        vmax = df["grid_vm_max_pu"].to_numpy()
        line = df["grid_line_loading_max_pct"].to_numpy()
        site_v = df["grid_vm_site_pu"].to_numpy()
        trafo = df["grid_trafo_loading_max_pct"].to_numpy()
        kpis.update(
            {
                "voltage_violation_steps": int(((vmin < low) | (vmax > high)).sum()),
                "overload_steps": int(
                    ((line > loading_limit_pct) | (trafo > loading_limit_pct)).sum()
                ),
                "min_voltage_pu": float(vmin.min()),
                "max_voltage_pu": float(vmax.max()),
                "max_line_loading_pct": float(line.max()),
                "max_trafo_loading_pct": float(trafo.max()),
                "grid_losses_kwh": float(df["grid_losses_kw"].to_numpy().sum() * hours),
                # The site's own bus: a feeder's background alone can put other buses out of
                # limits in every run, whatever the site does.
                "site_voltage_violation_steps": int(((site_v < low) | (site_v > high)).sum()),
                "site_min_voltage_pu": _nan_extreme(np.nanmin, site_v),
                "site_max_voltage_pu": _nan_extreme(np.nanmax, site_v),
            }
        )
    else:
        kpis.update(
            {
                "voltage_violation_steps": None,
                "overload_steps": None,
                "min_voltage_pu": None,
                "max_voltage_pu": None,
                "max_line_loading_pct": None,
                "max_trafo_loading_pct": None,
                "grid_losses_kwh": None,
                "site_voltage_violation_steps": None,
                "site_min_voltage_pu": None,
                "site_max_voltage_pu": None,
            }
        )
    if extra:
        kpis.update(extra)
    return kpis


def _nan_extreme(reduce: Any, values: np.ndarray) -> float | None:
    """``reduce`` (nanmin/nanmax) of ``values``; None when none is a number (no power flow
    converged)."""
    finite = values[~np.isnan(values)]
    return float(reduce(finite)) if len(finite) else None
