"""EV demand forecaster: arrival rates by time of day and day type, Poisson-style intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import poisson

from qubit_sim.stack.predict import (
    EvDemandForecaster,
    InsufficientHistoryError,
    PredictionError,
    backtest,
)


@pytest.fixture(scope="module")
def sessions(synth):
    return synth.poisson_sessions(49, seed=8)


def trained(synth, sessions, days: int = 35, **kwargs) -> tuple[EvDemandForecaster, pd.Timestamp]:
    arrivals, energy = sessions
    now = synth.START + pd.Timedelta(days=days)
    forecaster = EvDemandForecaster("UTC", history_start_utc=synth.START, **kwargs)
    forecaster.observe_sessions(arrivals[arrivals < now], energy[arrivals < now])
    return forecaster, now


def test_rates_match_the_generating_process(synth, sessions) -> None:
    forecaster, now = trained(synth, sessions)  # now = a Monday, 00:00 UTC
    week = forecaster.predict_arrivals(now, 96 * 7)
    per_day = week.mean.reshape(7, 96).sum(axis=1)
    # 12 a weekday and 3 a weekend day, estimated from 25 and 10 days of history.
    np.testing.assert_allclose(per_day[:5], 12.0, atol=2.0)
    np.testing.assert_allclose(per_day[5:], 3.0, atol=1.2)
    monday = week.mean[:96]
    assert week.times_utc[int(np.argmax(monday))].hour == 8  # arrivals peak at 08:30 +- 45 min
    assert monday[:16].sum() < 0.05  # hardly anyone before 04:00


def test_arrival_intervals_are_poisson_quantiles(synth, sessions) -> None:
    forecaster, now = trained(synth, sessions)
    forecast = forecaster.predict_arrivals(now, 96)
    for c in forecast.coverages:
        np.testing.assert_array_equal(forecast.lower[c], poisson.ppf((1 - c) / 2, forecast.mean))
        np.testing.assert_array_equal(forecast.upper[c], poisson.ppf((1 + c) / 2, forecast.mean))


def test_energy_is_rate_times_mean_session_energy(synth, sessions) -> None:
    forecaster, now = trained(synth, sessions)
    energy = forecaster.predict(now, 96)
    arrivals = forecaster.predict_arrivals(now, 96)
    busy = arrivals.mean > 0.2
    assert busy.sum() >= 4
    # Gamma(4, 5) energies: mean 20 kWh.
    np.testing.assert_allclose(energy.mean[busy] / arrivals.mean[busy], 20.0, rtol=0.15)
    assert energy.quantity == "ev_arrival_energy_kwh" and arrivals.quantity == "ev_arrivals"


def test_compound_poisson_bounds_are_exact_for_equal_sessions(synth) -> None:
    # Every session asks for 10 kWh, so slot energy = 10 x Poisson(rate) exactly. Two weeks
    # from a Monday: 4, 6, 7, 8, 9 arrivals Monday..Friday and 1, 2 at weekends, all 09:0x.
    per_day = np.tile([4, 6, 7, 8, 9, 1, 2], 2)
    offsets = [d * 86400 + 9 * 3600 + 60 * k for d, n in enumerate(per_day) for k in range(n)]
    arrivals = synth.START + pd.to_timedelta(offsets, unit="s")
    forecaster = EvDemandForecaster(
        "UTC", history_start_utc=synth.START, kernel_width_s=0, energy_step_kwh=1.0
    )
    forecaster.observe_sessions(arrivals, np.full(len(arrivals), 10.0))
    for days_ahead, expected_rate in ((0, 6.8), (5, 1.5)):  # a Monday, a Saturday
        now = synth.START + pd.Timedelta(days=14 + days_ahead)
        energy = forecaster.predict(now, 96)
        rate = forecaster.predict_arrivals(now, 96).mean
        assert rate[36] == pytest.approx(expected_rate)
        assert (np.delete(rate, 36) == 0).all()  # no smoothing: every other slot stays empty
        for c in energy.coverages:
            np.testing.assert_allclose(energy.lower[c], 10 * poisson.ppf((1 - c) / 2, rate))
            np.testing.assert_allclose(energy.upper[c], 10 * poisson.ppf((1 + c) / 2, rate))


def test_energy_intervals_cover_held_out_days(synth, sessions) -> None:
    arrivals, energy = sessions
    report = backtest(
        lambda: EvDemandForecaster("UTC", history_start_utc=synth.START),
        arrivals,
        energy,
        start_after_s=28 * 86400,
        every_s=6 * 3600,
        aggregate="sum",
        end_utc=synth.START + pd.Timedelta(days=49),
    )
    busy = report.mean > 5.0
    assert busy.sum() > 200
    for c in (0.8, 0.95):
        inside = (report.truth >= report.lower[c]) & (report.truth <= report.upper[c])
        # Central intervals of a discrete distribution hold at least the nominal mass.
        assert inside[busy].mean() >= c - 0.04
        assert report.coverage[c] >= c
    assert abs(report.bias) < 0.5


def test_unobserved_day_type_borrows_the_pooled_rate(synth, sessions) -> None:
    forecaster, now = trained(synth, sessions, days=5)  # Monday..Friday only
    saturday = forecaster.predict_arrivals(now, 96)  # day 5 is a Saturday
    assert saturday.times_utc[0].dayofweek == 5
    assert saturday.mean.sum() == pytest.approx(
        forecaster.predict_arrivals(now - pd.Timedelta(days=1), 96).mean.sum(), rel=0.2
    )


def test_quiet_history_forecasts_zero_and_errors_are_clear(synth) -> None:
    quiet = EvDemandForecaster(history_start_utc=synth.START)
    forecast = quiet.predict(synth.START + pd.Timedelta(days=3), 96)
    assert (forecast.mean == 0).all()
    assert all((forecast.upper[c] == 0).all() for c in forecast.coverages)
    with pytest.raises(InsufficientHistoryError, match="no EV sessions"):
        EvDemandForecaster().predict(synth.START, 96)
    with pytest.raises(InsufficientHistoryError, match="starts at or after"):
        quiet.predict(synth.START, 96)
    with pytest.raises(PredictionError, match="finite and >= 0"):
        quiet.observe_sessions([synth.START], [-1.0])
    quiet.observe_sessions([synth.START + pd.Timedelta(hours=2)], [5.0])
    with pytest.raises(PredictionError, match="before the last one"):
        quiet.observe_sessions([synth.START + pd.Timedelta(hours=1)], [5.0])
