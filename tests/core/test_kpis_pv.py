"""PV self-consumption counts as exported PV only what the PV produced, as settlement does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qubit_sim.core.kpis import compute_kpis
from qubit_sim.stack.settle.certificates import hourly_pv_table


class _Tariff:
    billing_period = "month"
    demand_window_s = 900
    demand_charge_per_kw = 0.0


def _kpis(pv_kw: np.ndarray, site_kw: np.ndarray) -> dict:
    n = len(pv_kw)
    df = pd.DataFrame(
        {
            "time": pd.date_range("2025-06-02", periods=n, freq="15min", tz="UTC"),
            "grid_import_kw": np.clip(site_kw, 0, None),
            "grid_export_kw": np.clip(-site_kw, 0, None),
            "price_per_kwh": np.full(n, 0.2),
            "export_price_per_kwh": np.full(n, 0.05),
            "carbon_g_per_kwh": np.full(n, 300.0),
            "pv_kw": pv_kw,
            "pv_available_kw": -pv_kw,
            "load_kw": np.full(n, 5.0),
            "ev_p_kw": np.zeros(n),
        }
    )
    return compute_kpis(
        df,
        step_s=900,
        tariff=_Tariff(),
        tz="UTC",
        sessions_needed_kwh=np.zeros(0),
        sessions_delivered_kwh=np.zeros(0),
        sessions_rejected=np.zeros(0, dtype=bool),
        battery_throughput_kwh=0.0,
        battery_energy_change_kwh=0.0,
        energy_balance_error_kwh=0.0,
        import_limit_kw=1e9,
        export_limit_kw=1e9,
    )


def test_a_battery_exporting_at_night_is_not_pv_export() -> None:
    # Noon: 20 kW of PV, 5 kW exported; night: no PV, a battery exports 30 kW.
    pv = np.array([-20.0, -20.0, 0.0, 0.0])
    site = np.array([-5.0, -5.0, -30.0, -30.0])
    kpis = _kpis(pv, site)
    assert kpis["pv_self_consumption_ratio"] == pytest.approx(0.75)
    table = hourly_pv_table(
        pd.date_range("2025-06-02", periods=4, freq="15min", tz="UTC"),
        900,
        {"pv1": pv},
        site,
        np.full(4, 300.0),
    )
    produced, exported = table["e_produced_kwh"].sum(), table["e_exported_kwh"].sum()
    assert kpis["pv_self_consumption_ratio"] == pytest.approx(1 - exported / produced)
