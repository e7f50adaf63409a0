"""No forecaster uses observations stamped at or after the slot it is asked to forecast from.

Two forecasters get the same past; one of them is also fed (absurd) future truth before
``predict(now)``. Their forecasts - means and intervals - must be bit-identical. A control case
shows that a change in the *past* does change the forecast, so the comparison is not vacuous.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.stack.predict import (
    EvDemandForecaster,
    Forecast,
    Forecaster,
    LoadForecaster,
    PvForecaster,
    backtest,
)

FACTORIES: dict[str, Callable[[], Forecaster]] = {
    "load_seasonal_naive": lambda: LoadForecaster("seasonal_naive", tz="Europe/Amsterdam"),
    "load_regression": lambda: LoadForecaster("regression", tz="Europe/Amsterdam"),
    "pv_clearsky": lambda: PvForecaster(52.37, 4.90, 100.0, inverter_kw=90.0),
}


def assert_same(a: Forecast, b: Forecast) -> None:
    assert a.times_utc.equals(b.times_utc)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert a.coverages == b.coverages
    for c in a.coverages:
        np.testing.assert_array_equal(a.lower[c], b.lower[c])
        np.testing.assert_array_equal(a.upper[c], b.upper[c])


def differs(a: Forecast, b: Forecast) -> bool:
    return not np.allclose(a.mean, b.mean, equal_nan=True)


@pytest.fixture(scope="module")
def series(synth) -> dict[str, tuple[pd.DatetimeIndex, np.ndarray]]:
    times, load = synth.noisy_load(12, seed=5, trend_kw_per_week=2.0)
    pv_times, pv, _ = synth.cloudy_pv(12, seed=5)
    return {"load": (times, load), "pv": (pv_times, pv)}


@pytest.mark.parametrize("key", sorted(FACTORIES))
def test_future_truth_does_not_change_the_forecast(key, series) -> None:
    times, values = series["pv" if key.startswith("pv") else "load"]
    # An issue time inside a slot (+7 min): observations of the unfinished slot are ignored too.
    now = times[0] + pd.Timedelta(days=9, hours=10, minutes=7)
    before = times < now
    honest, fed_future = FACTORIES[key](), FACTORIES[key]()
    honest.observe(times[before], values[before])
    poisoned = np.where(before, values, 1e6)
    fed_future.observe(times, poisoned)
    assert_same(honest.predict(now, 96), fed_future.predict(now, 96))

    # Control: a different past must give a different forecast.
    changed = FACTORIES[key]()
    changed.observe(times[before], values[before] * 1.5)
    assert differs(honest.predict(now, 96), changed.predict(now, 96))


@pytest.mark.parametrize("key", sorted(FACTORIES))
def test_incremental_and_upfront_feeding_issue_identical_sequences(key, series) -> None:
    times, values = series["pv" if key.startswith("pv") else "load"]
    issues = times[0] + pd.Timedelta(days=8) + pd.to_timedelta(np.arange(8) * 5400, unit="s")
    incremental, upfront = FACTORIES[key](), FACTORIES[key]()
    upfront.observe(times, values)
    fed = 0
    for now in issues:
        upto = int(np.searchsorted(times, now))
        incremental.observe(times[fed:upto], values[fed:upto])
        fed = upto
        assert_same(incremental.predict(now, 48), upfront.predict(now, 48))


def test_backtest_matches_a_forecaster_that_was_given_everything(series) -> None:
    times, values = series["load"]
    report = backtest(
        FACTORIES["load_regression"], times, values, start_after_s=8 * 86400, every_s=6 * 3600
    )
    everything = FACTORIES["load_regression"]()
    everything.observe(times, values)
    for row, now in enumerate(report.issue_times_utc):
        forecast = everything.predict(now, 96)
        np.testing.assert_array_equal(report.mean[row], forecast.mean)
        np.testing.assert_array_equal(report.upper[0.95][row], forecast.upper[0.95])


def test_ev_forecaster_ignores_future_sessions(synth) -> None:
    arrivals, energy = synth.poisson_sessions(21, seed=2)
    now = synth.START + pd.Timedelta(days=15, hours=6)
    before = arrivals < now
    honest = EvDemandForecaster("Europe/Amsterdam", history_start_utc=synth.START)
    fed_future = EvDemandForecaster("Europe/Amsterdam", history_start_utc=synth.START)
    honest.observe_sessions(arrivals[before], energy[before])
    fed_future.observe_sessions(arrivals, np.where(before, energy, 500.0))
    assert_same(honest.predict(now, 96), fed_future.predict(now, 96))
    assert_same(honest.predict_arrivals(now, 96), fed_future.predict_arrivals(now, 96))
    changed = EvDemandForecaster("Europe/Amsterdam", history_start_utc=synth.START)
    changed.observe_sessions(arrivals[before], energy[before] * 2)
    assert differs(honest.predict(now, 96), changed.predict(now, 96))


@settings(max_examples=12, deadline=None)
@given(
    method=st.sampled_from(["seasonal_naive", "regression"]),
    offset_min=st.integers(min_value=2 * 24 * 60, max_value=11 * 24 * 60),
    horizon=st.integers(min_value=1, max_value=200),
    future_value=st.floats(-1e4, 1e4, allow_nan=False),
)
def test_no_peeking_property(series, method, offset_min, horizon, future_value) -> None:
    times, values = series["load"]
    now = times[0] + pd.Timedelta(minutes=offset_min)
    before = times < now
    honest, fed_future = LoadForecaster(method), LoadForecaster(method)
    honest.observe(times[before], values[before])
    fed_future.observe(times, np.where(before, values, future_value))
    assert_same(honest.predict(now, horizon), fed_future.predict(now, horizon))
