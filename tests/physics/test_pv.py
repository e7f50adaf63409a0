"""PV output from shipped TMY weather and from CSV weather."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qubit_sim.errors import QubitSimError
from qubit_sim.physics.pv import (
    available_weather,
    pv_ac_power_kw,
    tmy_weather,
    weather_from_csv,
)

GSO = "723170TYA"


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    return tmy_weather(GSO, 2021)


@pytest.fixture(scope="module")
def site(weather: pd.DataFrame) -> dict:
    return dict(latitude=weather.attrs["latitude"], longitude=weather.attrs["longitude"])


@pytest.fixture(scope="module")
def hourly_2021(weather: pd.DataFrame, site: dict) -> tuple[pd.DatetimeIndex, np.ndarray]:
    times = pd.date_range("2021-01-01", "2021-12-31 23:00", freq="1h", tz="UTC")
    power = pv_ac_power_kw(times, weather, kwp=1.0, tilt_deg=30, azimuth_deg=180, **site)
    return times, power


def test_available_weather_lists_the_shipped_files() -> None:
    names = available_weather()
    assert {"723170TYA", "703165TY", "12839"} <= set(names)


def test_unknown_weather_name_suggests_a_close_one() -> None:
    with pytest.raises(QubitSimError, match="did you mean '723170TYA'"):
        tmy_weather("723170TY", 2021)


@pytest.mark.parametrize(("year", "rows"), [(2021, 8760), (2024, 8784)])
def test_tmy_weather_is_one_local_year_of_hourly_utc_rows(year: int, rows: int) -> None:
    frame = tmy_weather(GSO, year)
    assert list(frame.columns) == ["ghi", "dni", "dhi", "temp_air", "wind_speed"]
    assert len(frame) == rows
    assert str(frame.index.tz) == "UTC"
    assert (np.diff(frame.index.asi8) == 3600 * 10**9).all()
    # Local standard time is UTC-5 in Greensboro: the local year starts at 05:00 UTC.
    assert frame.index[0] == pd.Timestamp(f"{year}-01-01 05:00", tz="UTC")
    assert frame.attrs["latitude"] == pytest.approx(36.1)
    assert frame.attrs["tz_offset_h"] == -5.0
    assert frame.attrs["label"] == "start" and frame.attrs["typical_year"]


def test_leap_day_repeats_28_february() -> None:
    frame = tmy_weather(GSO, 2024)
    feb28 = frame.loc["2024-02-28 05:00":"2024-02-29 04:00"].to_numpy()
    feb29 = frame.loc["2024-02-29 05:00":"2024-03-01 04:00"].to_numpy()
    np.testing.assert_array_equal(feb28, feb29)


def test_tmy2_file_is_read_in_si_units() -> None:
    miami = tmy_weather("12839", 2021)
    assert len(miami) == 8760
    assert 15.0 < miami["temp_air"].mean() < 30.0  # file stores 0.1 °C
    assert 1.0 < miami["wind_speed"].mean() < 8.0  # file stores 0.1 m/s


def test_zero_at_night(hourly_2021: tuple) -> None:
    times, power = hourly_2021
    local_hour = (times - pd.Timedelta(hours=5)).hour
    night = (local_hour >= 21) | (local_hour <= 4)
    assert power[night].max() == 0.0
    assert power.min() >= 0.0


def test_summer_noon_peak_is_plausible(hourly_2021: tuple) -> None:
    times, power = hourly_2021
    june_noon = (times.month == 6) & ((times - pd.Timedelta(hours=5)).hour.isin([11, 12, 13]))
    assert 0.7 <= power[june_noon].max() <= 0.9


def test_annual_yield_is_plausible_for_greensboro(hourly_2021: tuple) -> None:
    _, power = hourly_2021
    assert 1100.0 <= power.sum() <= 1600.0  # kWh/kWp


def test_output_scales_with_kwp_and_clips_at_the_inverter(
    weather: pd.DataFrame, site: dict
) -> None:
    times = pd.date_range("2021-06-01", periods=24 * 7, freq="1h", tz="UTC")
    one = pv_ac_power_kw(times, weather, kwp=1.0, tilt_deg=25, azimuth_deg=180, **site)
    ten = pv_ac_power_kw(times, weather, kwp=10.0, tilt_deg=25, azimuth_deg=180, **site)
    np.testing.assert_allclose(ten, 10 * one, rtol=1e-9)
    clipped = pv_ac_power_kw(
        times, weather, kwp=10.0, tilt_deg=25, azimuth_deg=180, inverter_kw=5.0, **site
    )
    assert clipped.max() == pytest.approx(5.0)
    assert clipped.sum() < ten.sum()


def test_one_minute_steps_match_hourly_energy(weather: pd.DataFrame, site: dict) -> None:
    hourly = pd.date_range("2021-05-01", periods=24 * 14, freq="1h", tz="UTC")
    minutes = pd.date_range("2021-05-01", periods=24 * 14 * 60, freq="1min", tz="UTC")
    e_hourly = pv_ac_power_kw(
        hourly, weather, kwp=1, tilt_deg=30, azimuth_deg=180, interval_s=3600, **site
    ).sum()
    e_minutes = (
        pv_ac_power_kw(minutes, weather, kwp=1, tilt_deg=30, azimuth_deg=180, **site).sum() / 60
    )
    assert e_minutes == pytest.approx(e_hourly, rel=0.02)


def test_typical_year_serves_any_calendar_year(weather: pd.DataFrame, site: dict) -> None:
    later = pd.date_range("2030-07-01", periods=48, freq="1h", tz="UTC")
    same_days = pd.date_range("2021-07-01", periods=48, freq="1h", tz="UTC")
    p_later = pv_ac_power_kw(later, weather, kwp=1, tilt_deg=30, azimuth_deg=180, **site)
    p_same = pv_ac_power_kw(same_days, weather, kwp=1, tilt_deg=30, azimuth_deg=180, **site)
    # Same weather on the same calendar days; only the sun's position differs by a few years.
    assert p_later.sum() == pytest.approx(p_same.sum(), rel=0.01)
    spanning = pd.date_range("2025-12-31", periods=72, freq="1h", tz="UTC")
    assert pv_ac_power_kw(spanning, weather, kwp=1, tilt_deg=30, azimuth_deg=180, **site).max() > 0


def test_unsupported_model_lists_supported(weather: pd.DataFrame, site: dict) -> None:
    times = pd.date_range("2021-06-01", periods=2, freq="1h", tz="UTC")
    with pytest.raises(QubitSimError, match="supported: pvwatts"):
        pv_ac_power_kw(times, weather, kwp=1, tilt_deg=30, azimuth_deg=180, model="sapm", **site)


def test_invalid_plant_parameters_are_rejected(weather: pd.DataFrame, site: dict) -> None:
    times = pd.date_range("2021-06-01", periods=2, freq="1h", tz="UTC")
    with pytest.raises(QubitSimError, match="kwp must be > 0"):
        pv_ac_power_kw(times, weather, kwp=0, tilt_deg=30, azimuth_deg=180, **site)


def _write_weather_csv(path: Path, frame: pd.DataFrame, columns: list[str]) -> Path:
    out = frame[columns].copy()
    out.insert(0, "time", frame.index.strftime("%Y-%m-%dT%H:%M:%SZ"))
    out.to_csv(path, index=False)
    return path


def test_csv_weather_reproduces_tmy_output(
    tmp_path: Path, weather: pd.DataFrame, site: dict
) -> None:
    week = weather.loc["2021-06-01":"2021-06-08"]
    path = _write_weather_csv(tmp_path / "w.csv", week, list(week.columns))
    from_csv = weather_from_csv(path, label="start")
    from_csv.attrs["altitude"] = weather.attrs["altitude"]  # refraction depends on pressure
    assert from_csv.attrs["interval_s"] == 3600
    times = pd.date_range("2021-06-02", periods=24 * 5, freq="15min", tz="UTC")
    expected = pv_ac_power_kw(times, weather, kwp=1, tilt_deg=30, azimuth_deg=180, **site)
    got = pv_ac_power_kw(times, from_csv, kwp=1, tilt_deg=30, azimuth_deg=180, **site)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_ghi_only_csv_is_decomposed(tmp_path: Path, weather: pd.DataFrame, site: dict) -> None:
    week = weather.loc["2021-06-01":"2021-06-08"]
    path = _write_weather_csv(tmp_path / "ghi.csv", week, ["ghi", "temp_air"])
    here = weather_from_csv(path, label="start", **site)
    assert {"dni", "dhi"} <= set(here.columns)
    later = weather_from_csv(path, label="start")
    assert "dni" not in later.columns
    times = pd.date_range("2021-06-02", periods=24 * 5, freq="1h", tz="UTC")
    full = pv_ac_power_kw(times, weather, kwp=1, tilt_deg=30, azimuth_deg=180, **site).sum()
    for frame in (here, later):
        decomposed = pv_ac_power_kw(times, frame, kwp=1, tilt_deg=30, azimuth_deg=180, **site)
        assert decomposed.sum() == pytest.approx(full, rel=0.15)


def test_csv_weather_must_cover_the_request(
    tmp_path: Path, weather: pd.DataFrame, site: dict
) -> None:
    week = weather.loc["2021-06-01":"2021-06-08"]
    frame = weather_from_csv(_write_weather_csv(tmp_path / "w.csv", week, ["ghi", "dni", "dhi"]))
    times = pd.date_range("2021-06-07", periods=72, freq="1h", tz="UTC")
    with pytest.raises(QubitSimError, match="weather covers"):
        pv_ac_power_kw(times, frame, kwp=1, tilt_deg=30, azimuth_deg=180, **site)


def test_csv_weather_errors_name_the_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    missing.write_text("time,dni\n2021-01-01T00:00Z,1\n")
    with pytest.raises(QubitSimError, match="lacks column"):
        weather_from_csv(missing)
    bad_time = tmp_path / "bad_time.csv"
    bad_time.write_text("time,ghi\n2021-01-01T00:00Z,1\nyesterday,2\n")
    with pytest.raises(QubitSimError, match="unparsable time at line 3"):
        weather_from_csv(bad_time)
    bad_value = tmp_path / "bad_value.csv"
    bad_value.write_text(
        "time,ghi\n2021-01-01T00:00Z,1\n2021-01-01T01:00Z,2\n2021-01-01T02:00Z,x\n"
    )
    with pytest.raises(QubitSimError, match="ghi is not a number at line 4"):
        weather_from_csv(bad_value)
    backwards = tmp_path / "backwards.csv"
    backwards.write_text("time,ghi\n2021-01-01T01:00Z,1\n2021-01-01T00:00Z,2\n")
    with pytest.raises(QubitSimError, match="increase strictly; see line 3"):
        weather_from_csv(backwards)
