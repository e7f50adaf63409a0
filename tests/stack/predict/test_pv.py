"""PV forecaster: clear-sky shape, zero at night, learned index, nowcast, calibrated intervals."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pvlib
import pytest

from qubit_sim.stack.predict import (
    BacktestReport,
    Forecaster,
    LoadForecaster,
    PredictionError,
    PvForecaster,
    backtest,
    clear_sky_ac_kw,
)

KWP, INVERTER_KW = 100.0, 90.0


def make(synth, **kwargs) -> PvForecaster:
    return PvForecaster(synth.LAT, synth.LON, KWP, inverter_kw=INVERTER_KW, **kwargs)


def sun_elevation(times: pd.DatetimeIndex, synth) -> np.ndarray:
    """Apparent elevation [deg], computed independently of the forecaster."""
    position = pvlib.solarposition.get_solarposition(times, synth.LAT, synth.LON)
    return position["apparent_elevation"].to_numpy()


def test_forecast_is_zero_at_night_and_follows_the_clear_sky_shape(synth) -> None:
    times = synth.quarter_hours(6)
    clear = clear_sky_ac_kw(
        times + pd.Timedelta(seconds=450), synth.LAT, synth.LON, KWP, inverter_kw=INVERTER_KW
    )["p_kw"].to_numpy()
    now = times[0] + pd.Timedelta(days=5)
    forecaster = make(synth)
    forecaster.observe(times[times < now], 0.6 * clear[times < now])
    forecast = forecaster.predict(now, 96)
    slots = forecast.times_utc

    # Night: the sun is below the horizon at both ends of the slot.
    night = (sun_elevation(slots, synth) < -1) & (
        sun_elevation(slots + pd.Timedelta(minutes=15), synth) < -1
    )
    assert night.sum() > 20
    assert (forecast.mean[night] == 0).all()
    for c in forecast.coverages:
        assert (forecast.lower[c][night] == 0).all() and (forecast.upper[c][night] == 0).all()

    # Day: 0.6 x the clear-sky curve of the same plant, peak at solar noon.
    expected = 0.6 * clear[times.get_indexer(slots)]
    day = expected > 5
    np.testing.assert_allclose(forecast.mean[day], expected[day], rtol=0.03)
    assert abs(int(np.argmax(forecast.mean)) - int(np.argmax(expected))) <= 1
    assert np.corrcoef(forecast.mean, expected)[0, 1] > 0.999


def test_index_follows_recent_days_more_than_old_ones(synth) -> None:
    times = synth.quarter_hours(7)
    clear = clear_sky_ac_kw(
        times + pd.Timedelta(seconds=450), synth.LAT, synth.LON, KWP, inverter_kw=INVERTER_KW
    )["p_kw"].to_numpy()
    old = times < times[0] + pd.Timedelta(days=3)
    values = np.where(old, 0.9, 0.4) * clear
    forecaster = make(synth, nowcast_halflife_s=1.0)
    forecaster.observe(times[:-96], values[:-96])
    forecast = forecaster.predict(times[-96], 96)
    noon = int(np.argmax(forecast.mean))
    index = forecast.mean[noon] / clear[len(times) - 96 + noon]
    # Noon slots of the history are 0.5 .. 5.5 days old; with a 2-day half-life the three recent
    # days at 0.4 weigh 1.85 and the three older ones at 0.9 weigh 0.66 -> 0.53 (plain mean 0.65).
    weights = 0.5 ** (np.arange(0.5, 6.0) / 2.0)
    expected = (weights[:3].sum() * 0.4 + weights[3:].sum() * 0.9) / weights.sum()
    assert index == pytest.approx(expected, abs=0.02)


def test_without_history_the_default_index_applies(synth) -> None:
    slots = synth.quarter_hours(1)
    clear = clear_sky_ac_kw(
        slots + pd.Timedelta(seconds=450), synth.LAT, synth.LON, KWP, inverter_kw=INVERTER_KW
    )["p_kw"].to_numpy()
    forecast = make(synth, default_clear_sky_index=0.5).predict(slots[0], 96)
    day = clear > 5
    np.testing.assert_allclose(forecast.mean[day], 0.5 * clear[day], rtol=0.03)
    assert np.isnan(forecast.upper[0.8][day]).all()  # nothing to calibrate on yet


def test_nowcast_pulls_the_next_hour_towards_the_current_index(synth) -> None:
    times = synth.quarter_hours(4)
    clear = clear_sky_ac_kw(
        times + pd.Timedelta(seconds=450), synth.LAT, synth.LON, KWP, inverter_kw=INVERTER_KW
    )["p_kw"].to_numpy()
    now = times[0] + pd.Timedelta(days=3, hours=9)  # 11:00 local, mid-morning
    last_hour = times >= now - pd.Timedelta(hours=1)
    values = np.where(last_hour, 0.2, 0.9) * clear
    forecaster = make(synth)
    forecaster.observe(times[times < now], values[times < now])
    forecast = forecaster.predict(now, 32)
    index = forecast.mean / clear[times.get_indexer(forecast.times_utc)]
    assert index[0] < 0.5  # next slot: mostly the overcast now
    assert index[-1] > 0.8  # eight hours on: back to the days before
    assert np.all(np.diff(index[:24]) > -1e-9)  # the blend relaxes monotonically


@pytest.fixture(scope="module")
def cloudy_reports(synth):
    times, values, _ = synth.cloudy_pv(70, seed=4)

    def run(factory: Callable[[], Forecaster]) -> BacktestReport:
        return backtest(factory, times, values, start_after_s=28 * 86400, every_s=3 * 3600)

    return {
        "pv": run(lambda: make(synth)),
        "yesterday": run(lambda: LoadForecaster("seasonal_naive", season_days=1)),
    }


def test_intervals_cover_held_out_cloudy_days_near_nominal(cloudy_reports) -> None:
    report = cloudy_reports["pv"]
    assert report.n_forecasts > 300
    daylight = report.truth > 0
    for coverage, tolerance in ((0.8, 0.05), (0.95, 0.035)):
        lower, upper = report.lower[coverage], report.upper[coverage]
        inside = (report.truth >= lower) & (report.truth <= upper)
        assert inside[daylight].mean() == pytest.approx(coverage, abs=tolerance)
        assert (lower >= 0).all() and (upper <= INVERTER_KW).all()


def test_clear_sky_forecaster_beats_yesterdays_profile(cloudy_reports) -> None:
    assert cloudy_reports["pv"].mae < 0.85 * cloudy_reports["yesterday"].mae
    assert cloudy_reports["pv"].rmse < 0.85 * cloudy_reports["yesterday"].rmse


def test_invalid_plants_are_refused() -> None:
    with pytest.raises(PredictionError, match="kwp=0"):
        PvForecaster(52.0, 5.0, 0.0)
    with pytest.raises(PredictionError, match="latitude 95"):
        PvForecaster(95.0, 5.0, 10.0)
    with pytest.raises(PredictionError, match="inverter_kw=-1"):
        PvForecaster(52.0, 5.0, 10.0, inverter_kw=-1)
