"""Synthetic series for the L2 forecaster tests: office load, cloudy PV, EV sessions."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from qubit_sim.stack.predict import clear_sky_ac_kw

LAT, LON = 52.37, 4.90
START = pd.Timestamp("2025-04-07", tz="UTC")  # a Monday


def quarter_hours(days: int, start: pd.Timestamp = START) -> pd.DatetimeIndex:
    """15-min slot starts over ``days`` days."""
    return pd.date_range(start, periods=96 * days, freq="15min")


def weekly_shape(times: pd.DatetimeIndex) -> np.ndarray:
    """Office-like load [kW]: base load, a working-day hump, less at weekends."""
    hours = np.asarray(times.hour + times.minute / 60.0)
    weekend = np.asarray(times.dayofweek >= 5)
    hump = 40.0 * np.exp(-0.5 * ((hours - 12.5) / 3.0) ** 2)
    return 15.0 + np.where(weekend, 0.25, 1.0) * hump + 3.0 * np.sin(2 * np.pi * hours / 24)


def noisy_load(
    days: int, seed: int, *, noise_kw: float = 3.0, trend_kw_per_week: float = 0.0
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Weekly-periodic load with a linear trend and Gaussian noise [kW]."""
    times = quarter_hours(days)
    rng = np.random.default_rng(seed)
    weeks = np.arange(len(times)) / (96 * 7)
    values = weekly_shape(times) + trend_kw_per_week * weeks
    return times, values + rng.normal(0.0, noise_kw, len(times))


def cloudy_pv(
    days: int, seed: int, *, kwp: float = 100.0, inverter_kw: float = 90.0
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """15-min PV [kW]: clear-sky output x a seeded cloud index (daily level + AR(1) noise).

    Returns times, PV and the clear-sky output of the same plant.
    """
    times = quarter_hours(days)
    clear = clear_sky_ac_kw(
        times + pd.Timedelta(seconds=450), LAT, LON, kwp, inverter_kw=inverter_kw
    )["p_kw"].to_numpy()
    rng = np.random.default_rng(seed)
    day = np.arange(len(times)) // 96
    level = rng.uniform(0.45, 1.0, days)[day]
    wobble = np.zeros(len(times))
    shocks = rng.normal(0.0, 0.07, len(times))
    for i in range(1, len(times)):
        wobble[i] = 0.9 * wobble[i - 1] + shocks[i]
    return times, clear * np.clip(level + wobble, 0.05, 1.1), clear


def poisson_sessions(
    days: int, seed: int, *, weekday_n: float = 12.0, weekend_n: float = 3.0
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """EV arrivals: weekday morning peak (08:30 +- 45 min), weekend spread around noon.

    Energies are gamma distributed with mean 20 kWh.
    """
    rng = np.random.default_rng(seed)
    arrivals: list[pd.Timestamp] = []
    energies: list[float] = []
    for d in range(days):
        day0 = START + pd.Timedelta(days=d)
        weekend = day0.dayofweek >= 5
        n = rng.poisson(weekend_n if weekend else weekday_n)
        centre, spread = (12 * 3600, 3 * 3600) if weekend else (8.5 * 3600, 2700)
        tod = np.sort(np.clip(rng.normal(centre, spread, n), 0, 86_399))
        arrivals += [day0 + pd.Timedelta(seconds=float(t)) for t in tod]
        energies += list(rng.gamma(4.0, 5.0, n))
    return pd.DatetimeIndex(arrivals), np.asarray(energies)


@pytest.fixture(scope="session")
def synth() -> SimpleNamespace:
    """The builders above, for test modules (conftest is not importable in importlib mode)."""
    return SimpleNamespace(
        LAT=LAT,
        LON=LON,
        START=START,
        quarter_hours=quarter_hours,
        weekly_shape=weekly_shape,
        noisy_load=noisy_load,
        cloudy_pv=cloudy_pv,
        poisson_sessions=poisson_sessions,
    )
