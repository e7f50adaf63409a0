"""Backtests: scores on a hand-worked example, the scenario-frame runner, a real simulated run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import qubit_sim
from qubit_sim.scenario.loader import load_scenario_text
from qubit_sim.stack.predict import (
    Forecast,
    PredictionError,
    backtest,
    backtest_scenario_frame,
    slot_times,
)


class LastValue:
    """Repeats the latest observation; intervals +-1.5 (80 %) and +-2.5 (95 %)."""

    name = "last_value"

    def __init__(self) -> None:
        self.times: list[pd.Timestamp] = []
        self.values: list[float] = []

    def observe(self, times_utc: Any, values: Any) -> None:
        self.times += list(pd.DatetimeIndex(times_utc))
        self.values += [float(v) for v in values]

    def predict(self, now_utc: Any, horizon_slots: int, slot_s: int = 900) -> Forecast:
        mean = np.full(horizon_slots, self.values[-1] if self.values else 0.0)
        first = pd.Timestamp(now_utc).value // (slot_s * 10**9)
        return Forecast(
            slot_times(first, horizon_slots, slot_s),
            mean,
            {0.8: mean - 1.5, 0.95: mean - 2.5},
            {0.8: mean + 1.5, 0.95: mean + 2.5},
            slot_s,
        )


def test_backtest_scores_a_hand_worked_example() -> None:
    # Hourly truth 0, 1, ..., 5; forecasts of 2 slots issued at 02:00, 03:00 and 04:00.
    times = pd.date_range("2025-01-01", periods=6, freq="1h", tz="UTC")
    report = backtest(
        LastValue, times, np.arange(6.0), start_after_s=7200, horizon_slots=2, slot_s=3600
    )
    # At 02:00 the last value is 1 and the truth is (2, 3): errors (-1, -2); same every hour.
    assert report.name == "last_value"
    assert list(report.issue_times_utc.hour) == [2, 3, 4]
    np.testing.assert_array_equal(report.mean, [[1, 1], [2, 2], [3, 3]])
    np.testing.assert_array_equal(report.truth, [[2, 3], [3, 4], [4, 5]])
    assert report.mae == pytest.approx(1.5)
    assert report.rmse == pytest.approx(np.sqrt(2.5))
    assert report.bias == pytest.approx(-1.5)
    np.testing.assert_allclose(report.mae_by_step, [1.0, 2.0])
    assert report.coverage == {0.8: 0.5, 0.95: 1.0}  # +-1.5 holds the 1-errors only
    assert report.mean_width == {0.8: 3.0, 0.95: 5.0}
    assert (report.n_forecasts, report.n_points) == (3, 6)
    summary = report.to_dict()
    assert summary["mae"] == pytest.approx(1.5) and summary["coverage"]["0.8"] == 0.5
    assert summary["horizon_slots"] == 2


def test_backtest_sums_event_series_and_respects_an_explicit_end() -> None:
    events = pd.DatetimeIndex(
        ["2025-01-01 00:10", "2025-01-01 00:20", "2025-01-01 02:05"], tz="UTC"
    )
    report = backtest(
        LastValue,
        events,
        [1.0, 2.0, 4.0],
        start_after_s=0,
        every_s=3600,
        horizon_slots=1,
        slot_s=3600,
        aggregate="sum",
        end_utc=pd.Timestamp("2025-01-01 04:00", tz="UTC"),
    )
    # Issues at 00:10 (slot 00:00), 01:10, 02:10, 03:10; slot sums 3, 0, 4, 0.
    np.testing.assert_array_equal(report.truth[:, 0], [3.0, 0.0, 4.0, 0.0])


def test_backtest_errors_name_the_problem() -> None:
    times = pd.date_range("2025-01-01", periods=6, freq="1h", tz="UTC")
    with pytest.raises(PredictionError, match="no issue time fits"):
        backtest(LastValue, times, np.arange(6.0), start_after_s=86400)
    with pytest.raises(PredictionError, match="every_s=0"):
        backtest(LastValue, times, np.arange(6.0), start_after_s=0, every_s=0)
    with pytest.raises(PredictionError, match="6 times and 5 values"):
        backtest(LastValue, times, np.arange(5.0), start_after_s=0)


def test_scenario_frame_runs_every_standard_forecaster(synth) -> None:
    times, pv, _ = synth.cloudy_pv(10, seed=9)
    _, load = synth.noisy_load(10, seed=9)
    frame = pd.DataFrame({"time": times, "pv_available_kw": pv, "load_kw": load})
    reports = backtest_scenario_frame(
        frame, synth.LAT, synth.LON, 100.0, pv_inverter_kw=90.0, tz="UTC", every_s=3 * 3600
    )
    assert set(reports) == {
        "pv_clearsky",
        "pv_seasonal_naive",
        "load_seasonal_naive",
        "load_regression",
    }
    for key, report in reports.items():
        assert report.name == key
        assert report.n_forecasts == 57  # days 2..9, every 3 h, whole horizon inside
        assert np.isfinite(report.mae) and set(report.coverage) == {0.8, 0.95}
    assert reports["pv_clearsky"].mae < reports["pv_seasonal_naive"].mae
    without_pv = backtest_scenario_frame(frame.drop(columns="pv_available_kw"), 0, 0, 0.0)
    assert set(without_pv) == {"load_seasonal_naive", "load_regression"}
    with pytest.raises(PredictionError, match="no 'load_kw' column"):
        backtest_scenario_frame(frame.drop(columns="load_kw"), synth.LAT, synth.LON, 100.0)


SITE_YAML = """
site:
  name: predict_backtest
  location: {lat: 52.37, lon: 4.90, tz: Europe/Amsterdam}
  start: 2025-06-02T00:00:00Z
  duration: 2d
  step: 60s
  seed: 7
  grid_connection: {import_kw: 250, export_kw: 150}
assets:
  pv:
    - {template: pv_inverter_100kw, id: carport_pv, kwp: 100, inverter_kw: 90}
  loads:
    - {id: office_building, profile: G1-A, annual_kwh: 250000}
tariff:
  currency: EUR
  energy_rates:
    - {name: flat, rate: 0.2, start_time: "00:00", end_time: "23:59"}
controller:
  name: rule_based
  period: 15min
"""


@pytest.mark.slow
def test_scenario_frame_on_a_simulated_run(tmp_path) -> None:
    # The PV and load of a simulated site (no feeder: it would only add build time here).
    scenarios = Path(qubit_sim.__file__).resolve().parents[1] / "scenarios"
    qubit_sim.run(load_scenario_text(SITE_YAML, base_dir=scenarios), plots=False, out=tmp_path)
    frame = pd.read_parquet(tmp_path / "timeseries.parquet")
    reports = backtest_scenario_frame(
        frame,
        52.37,
        4.90,
        100.0,
        tz="Europe/Amsterdam",
        pv_inverter_kw=90.0,
        start_after_s=86400,
        horizon_slots=48,
    )
    assert set(reports) == {
        "pv_clearsky",
        "pv_seasonal_naive",
        "load_seasonal_naive",
        "load_regression",
    }
    pv = reports["pv_clearsky"]
    assert pv.n_forecasts == 13  # 00:00 .. 12:00 of day 2, 12 h ahead each
    assert np.isfinite(pv.mean).all() and (pv.mean >= 0).all()
    # The simulated plant is dark at night, and so is the forecast.
    dark = pv.truth == 0
    assert dark.any() and (pv.mean[dark] < 1.0).all()
    assert pv.mae < 0.25 * float(np.nanmax(pv.truth))
    assert reports["load_regression"].mae < 0.25 * float(np.nanmax(frame["load_kw"]))
