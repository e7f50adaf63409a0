"""A whole year runs: calendar wrap of profiles and weather, DST, billing months."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import qubit_sim
from qubit_sim.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[2]


def test_a_year_at_hourly_steps(tmp_path: Path) -> None:
    loaded = load_scenario(
        ROOT / "scenarios" / "workplace_pv_battery.yaml",
        overrides={"site": {"duration": "365d", "step": "1h"}, "controller": {"period": "1h"}},
    )
    result = qubit_sim.run(loaded, out=tmp_path, plots=False)
    assert result.complete and result.manifest["n_steps"] == 8760
    df = result.timeseries()
    assert df["time"].iloc[-1] == df["time"].iloc[0] + np.timedelta64(8759, "h")
    kpis = result.kpis
    assert kpis["energy_balance_error_kwh"] < 1e-6
    # PV: a plausible Dutch yield for 100 kWp (relocated typical year), more in June than December.
    assert 700 < kpis["pv_available_kwh"] / 100 < 1400
    local = df.set_index(df["time"].dt.tz_convert("Europe/Amsterdam"))
    by_month = local["pv_available_kw"].groupby(local.index.month).sum()
    assert by_month[6] > 3 * by_month[12]
    # Twelve or thirteen billing months, each with its own demand charge.
    assert kpis["demand_charge"] > 11 * 8.0 * 50
    assert df["grid_vm_min_pu"].notna().all()
