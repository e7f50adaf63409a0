"""Building load profiles: SimBench profiles, sampling, scaling and CSV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qubit_sim.errors import QubitSimError
from qubit_sim.physics.load import (
    PROFILE_STEPS_2016,
    load_from_csv,
    profile_at,
    scale_profile,
    simbench_load_names,
    simbench_load_profile,
)

# A synthetic profile whose value is its own slot number makes every mapping visible.
RAMP = np.arange(PROFILE_STEPS_2016, dtype=float)


@pytest.mark.parametrize("name", ["G1-A", "H0-A", "G0-A", "L0-A"])
def test_simbench_profiles_are_a_2016_quarter_hour_year(name: str) -> None:
    profile = simbench_load_profile(name)
    assert profile.shape == (PROFILE_STEPS_2016,)
    assert np.isfinite(profile).all()
    assert 0.9 <= profile.max() <= 1.0 + 1e-9  # relative to the rated power
    assert simbench_load_profile(name) is profile  # cached per process


def test_commercial_profile_peaks_in_office_hours() -> None:
    g1 = simbench_load_profile("G1-A").reshape(366, 96)
    weekdays = g1[3:8]  # 4-8 January 2016, Monday to Friday
    assert weekdays[:, 40:64].mean() > 2 * weekdays[:, :20].mean()  # 10-16 h vs 0-5 h


def test_unknown_profile_suggests_close_names() -> None:
    assert "G1-A" in simbench_load_names()
    with pytest.raises(QubitSimError, match="did you mean 'G1-A'"):
        simbench_load_profile("G1A")


def test_profile_at_maps_2016_instants_onto_their_own_slots() -> None:
    times = pd.date_range("2016-01-01", periods=PROFILE_STEPS_2016, freq="15min", tz="UTC")
    np.testing.assert_array_equal(profile_at(times, RAMP), RAMP)


def test_profile_at_holds_within_the_quarter_hour() -> None:
    times = pd.date_range("2025-05-05 10:00", periods=15, freq="1min", tz="UTC")
    values = profile_at(times, RAMP)
    assert (values == values[0]).all()
    assert profile_at(pd.DatetimeIndex(["2025-05-05 10:15"], tz="UTC"), RAMP)[0] == values[0] + 1


def test_profile_at_uses_month_and_day_across_years() -> None:
    def slot(stamp: str) -> int:
        return int(profile_at(pd.DatetimeIndex([stamp], tz="UTC"), RAMP)[0])

    assert slot("2025-03-01 00:00") == 60 * 96  # 1 March is day 60 of 2016 (0-based)
    assert slot("2024-02-29 12:00") == 59 * 96 + 48
    assert slot("2025-12-31 23:45") == PROFILE_STEPS_2016 - 1
    assert slot("2023-01-01 00:00") == 0


def test_profile_at_local_wall_clock() -> None:
    utc = pd.DatetimeIndex(["2025-07-01 06:00"], tz="UTC")
    assert (
        profile_at(utc, RAMP, tz="Europe/Berlin")[0]
        == profile_at(pd.DatetimeIndex(["2025-07-01 08:00"], tz="UTC"), RAMP)[0]
    )
    naive = pd.DatetimeIndex(["2025-07-01 06:00"])
    assert profile_at(naive, RAMP)[0] == profile_at(utc, RAMP)[0]


@settings(max_examples=60, deadline=None)
@given(
    profile=hnp.arrays(np.float64, 96 * 7, elements=st.floats(0.0, 5.0)).filter(
        lambda a: a.sum() > 1e-3
    ),
    annual_kwh=st.floats(1.0, 1e7),
)
def test_scaling_by_annual_energy_is_exact(profile: np.ndarray, annual_kwh: float) -> None:
    scaled = scale_profile(profile, annual_kwh=annual_kwh)
    assert scaled.sum() * 0.25 == pytest.approx(annual_kwh, rel=1e-12)


def test_scaling_a_simbench_year() -> None:
    h0 = scale_profile(simbench_load_profile("H0-A"), annual_kwh=4500.0)
    assert h0.sum() * 0.25 == pytest.approx(4500.0, rel=1e-12)
    peak = scale_profile(simbench_load_profile("G1-A"), peak_kw=250.0)
    assert peak.max() == pytest.approx(250.0, rel=1e-12)


def test_scale_profile_needs_exactly_one_target() -> None:
    with pytest.raises(QubitSimError, match="exactly one"):
        scale_profile(RAMP)
    with pytest.raises(QubitSimError, match="exactly one"):
        scale_profile(RAMP, annual_kwh=1.0, peak_kw=1.0)
    with pytest.raises(QubitSimError, match="no positive energy"):
        scale_profile(np.zeros(10), annual_kwh=1.0)


@pytest.fixture()
def load_csv(tmp_path: Path) -> Path:
    path = tmp_path / "load.csv"
    path.write_text(
        "time,p_kw\n"
        "2025-01-01T00:00:00Z,10\n"
        "2025-01-01T00:15:00Z,20\n"
        "2025-01-01T00:30:00Z,30\n"
        "2025-01-01T00:45:00Z,40\n"
    )
    return path


def test_load_csv_hold_and_linear(load_csv: Path) -> None:
    times = pd.date_range("2025-01-01", periods=12, freq="5min", tz="UTC")
    held = load_from_csv(load_csv, times)
    np.testing.assert_array_equal(held, [10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40])
    linear = load_from_csv(load_csv, times[:10], method="linear")
    np.testing.assert_allclose(linear[:4], [10, 10 + 10 / 3, 10 + 20 / 3, 20])


def test_load_csv_must_cover_the_scenario(load_csv: Path) -> None:
    times = pd.date_range("2025-01-01", periods=3, freq="30min", tz="UTC")  # up to 01:00
    with pytest.raises(QubitSimError, match="extend the file"):
        load_from_csv(load_csv, times)


def test_load_csv_gap_inside_the_scenario(tmp_path: Path) -> None:
    path = tmp_path / "gap.csv"
    path.write_text(
        "time,p_kw\n2025-01-01T00:00Z,1\n2025-01-01T00:15Z,1\n"
        "2025-01-01T03:00Z,1\n2025-01-01T03:15Z,1\n"
    )
    times = pd.date_range("2025-01-01", periods=12, freq="15min", tz="UTC")
    with pytest.raises(QubitSimError, match="gap after line 3"):
        load_from_csv(path, times)
    assert len(load_from_csv(path, times, max_gap_s=4 * 3600)) == 12


def test_load_csv_errors_name_rows_and_columns(tmp_path: Path) -> None:
    times = pd.date_range("2025-01-01", periods=2, freq="15min", tz="UTC")
    no_power = tmp_path / "a.csv"
    no_power.write_text("time,kw\n2025-01-01T00:00Z,1\n")
    with pytest.raises(QubitSimError, match="lacks column.*p_kw"):
        load_from_csv(no_power, times)
    bad_time = tmp_path / "b.csv"
    bad_time.write_text("time,p_kw\n2025-01-01T00:00Z,1\n2025-13-01T00:15Z,2\n")
    with pytest.raises(QubitSimError, match="unparsable time at line 3"):
        load_from_csv(bad_time, times)
    bad_value = tmp_path / "c.csv"
    bad_value.write_text("time,p_kw\n2025-01-01T00:00Z,1\n2025-01-01T00:15Z,lots\n")
    with pytest.raises(QubitSimError, match="not a number at line 3"):
        load_from_csv(bad_value, times)
