"""A scenario driven entirely by CSV files: sessions replayed exactly, load, weather, carbon."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import qubit_sim

SCENARIO = """
site:
  name: csv_site
  location: {lat: 52.0, lon: 5.0, tz: Europe/Amsterdam}
  start: 2025-04-07T00:00:00Z
  duration: 2d
  step: 15min
assets:
  chargers:
    - {template: ac_22kw, count: 2, id: bay}
  pv:
    - {kwp: 20, weather: weather.csv}
  loads:
    - {id: office, profile: "csv:load.csv"}
evs:
  sessions_csv: sessions.csv
tariff:
  default_rate: 0.3
  carbon: {csv: carbon.csv}
"""


def write_inputs(folder: Path) -> None:
    times = pd.date_range("2025-04-06T00:00:00Z", "2025-04-10T00:00:00Z", freq="1h")
    hours = times.hour.to_numpy()
    ghi = np.clip(np.sin((hours - 6) / 12 * np.pi), 0, None) * 600
    pd.DataFrame({
        "time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "ghi": ghi, "temp_air": 12.0,
        "wind_speed": 2.0,
    }).to_csv(folder / "weather.csv", index=False)
    pd.DataFrame({
        "time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "p_kw": 10 + 5 * (hours >= 8),
    }).to_csv(folder / "load.csv", index=False)
    pd.DataFrame({
        "time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "g_per_kwh": 200 + hours,
    }).to_csv(folder / "carbon.csv", index=False)
    pd.DataFrame({
        "arrival": ["2025-04-07T08:00:00Z", "2025-04-07T09:00:00Z", "2025-04-08T07:30:00Z"],
        "departure": ["2025-04-07T17:00:00Z", "2025-04-07T12:00:00Z", "2025-04-08T16:00:00Z"],
        "kwh": [20.0, 5.5, 31.0],
        "vehicle_id": ["van1", "car7", "van1"],
        "battery_kwh": [75, 50, 75],
        "arrival_soc": [0.2, 0.5, 0.3],
    }).to_csv(folder / "sessions.csv", index=False)


def test_csv_driven_scenario_replays_sessions_exactly(tmp_path: Path) -> None:
    write_inputs(tmp_path)
    path = tmp_path / "site.yaml"
    path.write_text(SCENARIO)
    result = qubit_sim.run(path, out=tmp_path / "out", plots=False)
    sessions = result.sessions()
    assert sessions["vehicle_id"].tolist() == ["van1", "car7", "van1"]
    assert np.allclose(sessions["e_needed_kwh"], [20.0, 5.5, 31.0])
    assert np.allclose(sessions["e_delivered_kwh"], [20.0, 5.5, 31.0])
    assert sessions["plugged_s"].tolist() == [8 * 3600, 9 * 3600, 31 * 3600 + 1800]
    df = result.timeseries()
    local_hour = df["time"].dt.hour.to_numpy()
    assert np.allclose(df["load_kw"], np.where(local_hour >= 8, 15.0, 10.0))
    assert df["carbon_g_per_kwh"].between(200, 224).all()
    assert df["pv_available_kw"].max() > 5 and df["pv_available_kw"].iloc[0] == 0.0
    assert result.kpis["energy_balance_error_kwh"] < 1e-6
