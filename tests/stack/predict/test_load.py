"""Load forecasters: seasonal naive, ridge regression, calibrated intervals."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest

from qubit_sim.stack.predict import (
    InsufficientHistoryError,
    LoadForecaster,
    PredictionError,
    backtest,
)


def test_seasonal_naive_reproduces_last_week_exactly_on_a_periodic_series(synth) -> None:
    times = synth.quarter_hours(26)
    values = synth.weekly_shape(times)
    now = times[0] + pd.Timedelta(days=22, hours=5)
    forecaster = LoadForecaster("seasonal_naive")
    forecaster.observe(times[times < now], values[times < now])
    forecast = forecaster.predict(now, 96 * 3)
    week_ago = forecast.times_utc - pd.Timedelta(days=7)
    np.testing.assert_array_equal(forecast.mean, values[times.get_indexer(week_ago)])
    np.testing.assert_array_equal(forecast.mean, values[times.get_indexer(forecast.times_utc)])
    # Every past forecast it calibrates on (replayed back to day 15) was exact as well, so the
    # intervals collapse onto the truth.
    np.testing.assert_allclose(forecast.upper[0.95] - forecast.lower[0.95], 0.0, atol=1e-9)


def test_seasonal_naive_uses_yesterday_without_a_week_of_history(synth) -> None:
    times = synth.quarter_hours(5)
    values = synth.weekly_shape(times) + np.arange(len(times)) * 0.01  # not periodic
    now = times[0] + pd.Timedelta(days=4)
    forecaster = LoadForecaster("seasonal_naive")
    forecaster.observe(times[times < now], values[times < now])
    forecast = forecaster.predict(now, 96 + 10)
    yesterday = values[times.get_indexer(forecast.times_utc[:96] - pd.Timedelta(days=1))]
    np.testing.assert_array_equal(forecast.mean[:96], yesterday)
    # Beyond one day ahead the latest known day repeats.
    np.testing.assert_array_equal(forecast.mean[96:], forecast.mean[:10])


def test_seasonal_naive_falls_back_over_gaps(synth) -> None:
    times = synth.quarter_hours(9)
    values = synth.weekly_shape(times)
    gap = (times >= times[0] + pd.Timedelta(days=1)) & (times < times[0] + pd.Timedelta(days=2))
    values = np.where(gap, np.nan, values)
    now = times[0] + pd.Timedelta(days=8)
    forecaster = LoadForecaster("seasonal_naive")
    forecaster.observe(times[times < now], values[times < now])
    forecast = forecaster.predict(now, 96)
    # Last week's day is missing: the same weekday two weeks back is not there either, so the
    # forecast takes yesterday; it must be finite everywhere.
    assert np.isfinite(forecast.mean).all()
    yesterday = values[times.get_indexer(forecast.times_utc - pd.Timedelta(days=1))]
    np.testing.assert_array_equal(forecast.mean, yesterday)


@pytest.fixture(scope="module")
def trend_reports(synth):
    times, values = synth.noisy_load(35, seed=11, noise_kw=3.0, trend_kw_per_week=3.0)
    return {
        method: backtest(
            partial(LoadForecaster, method),
            times,
            values,
            start_after_s=21 * 86400,
            every_s=3 * 3600,
        )
        for method in ("seasonal_naive", "regression")
    }


def test_regression_beats_seasonal_naive_on_noisy_periodic_series_with_trend(trend_reports):
    naive, regression = trend_reports["seasonal_naive"], trend_reports["regression"]
    assert regression.n_forecasts == naive.n_forecasts > 50
    assert regression.mae < 0.8 * naive.mae
    assert regression.rmse < 0.8 * naive.rmse
    # The regression is close to the noise floor: MAE of N(0, 3) noise is 3 * sqrt(2 / pi).
    assert regression.mae < 1.15 * 3.0 * np.sqrt(2 / np.pi)
    # Seasonal naive lags a week of trend behind: biased low by about 3 kW.
    assert naive.bias == pytest.approx(-3.0, abs=0.6)
    assert abs(regression.bias) < 0.6


@pytest.mark.parametrize("method", ["seasonal_naive", "regression"])
def test_interval_coverage_on_held_out_data_is_near_nominal(trend_reports, method):
    report = trend_reports[method]
    assert report.coverage[0.8] == pytest.approx(0.8, abs=0.04)
    assert report.coverage[0.95] == pytest.approx(0.95, abs=0.03)
    assert report.mean_width[0.8] < report.mean_width[0.95]


def test_regression_is_near_exact_on_a_noiseless_periodic_series(synth) -> None:
    times = synth.quarter_hours(24)
    values = synth.weekly_shape(times)
    now = times[0] + pd.Timedelta(days=22, hours=3)
    forecaster = LoadForecaster("regression", tz="Europe/Amsterdam")
    forecaster.observe(times[times < now], values[times < now])
    forecast = forecaster.predict(now, 96)
    truth = values[times.get_indexer(forecast.times_utc)]
    assert np.abs(forecast.mean - truth).max() < 0.5  # on a 15..58 kW range


def test_regression_forecasts_beyond_a_day_with_its_own_lags(synth) -> None:
    times, values = synth.noisy_load(30, seed=3, noise_kw=1.0)
    now = times[0] + pd.Timedelta(days=20)
    forecaster = LoadForecaster("regression")
    forecaster.observe(times[times < now], values[times < now])
    forecast = forecaster.predict(now, 96 * 3)
    truth = synth.weekly_shape(forecast.times_utc)
    assert np.isfinite(forecast.mean).all()
    assert np.abs(forecast.mean - truth).mean() < 1.5


def test_regression_with_short_history_falls_back_and_clips_at_zero(synth) -> None:
    times = synth.quarter_hours(1)[:40]
    forecaster = LoadForecaster("regression")
    forecaster.observe(times, np.linspace(5.0, 0.0, 40))
    forecast = forecaster.predict(times[-1] + pd.Timedelta(minutes=15), 96)
    assert (forecast.mean >= 0).all()
    for c in forecast.coverages:
        assert (forecast.lower[c][np.isfinite(forecast.lower[c])] >= 0).all()


def test_errors_name_the_problem() -> None:
    forecaster = LoadForecaster()
    now = pd.Timestamp("2025-01-01", tz="UTC")
    with pytest.raises(InsufficientHistoryError, match="no load observations"):
        forecaster.predict(now, 96)
    with pytest.raises(PredictionError, match="slot_s=700"):
        forecaster.predict(now, 96, slot_s=700)
    with pytest.raises(PredictionError, match="horizon_slots=0"):
        forecaster.predict(now, 0)
    with pytest.raises(PredictionError, match="naive"):
        forecaster.predict(pd.Timestamp("2025-01-01"), 96)
    with pytest.raises(PredictionError, match="unknown load method 'arima'"):
        LoadForecaster("arima")  # type: ignore[arg-type]
    with pytest.raises(PredictionError, match="unknown time zone"):
        LoadForecaster(tz="Mars/Olympus")
