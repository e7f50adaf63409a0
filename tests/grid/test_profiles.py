"""Background profiles: mapping scenario times onto the SimBench year."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.errors import GridError
from qubit_sim.grid import PROFILE_STEP_S, background_profiles, load_network, profile_row_index


@cache
def _absolute(code: str) -> dict[Any, pd.DataFrame]:
    import simbench

    return simbench.get_absolute_values(load_network(code), profiles_instead_of_study_cases=True)


def _row_of(net: Any, label: str, occurrence: int = 0) -> int:
    """Row of the profile table whose own time stamp reads ``label`` ("dd.mm.2016 HH:MM")."""
    rows = np.flatnonzero(net.profiles["load"]["time"].to_numpy() == label)
    return int(rows[occurrence])


@cache
def _row_instants_utc() -> pd.DatetimeIndex:
    """The UTC instant of every profile row, from SimBench's own German wall-time labels."""
    labels = load_network("1-LV-rural1--0-sw").profiles["load"]["time"]
    local = pd.DatetimeIndex(pd.to_datetime(labels, format="%d.%m.%Y %H:%M"))
    return local.tz_localize("Europe/Berlin", ambiguous="infer").tz_convert("UTC")


def test_profile_rows_are_a_uniform_grid_on_utc_plus_1() -> None:
    instants = _row_instants_utc()
    assert len(instants) == 366 * 96
    assert instants[0] == pd.Timestamp("2015-12-31 23:00", tz="UTC")
    assert (np.diff(instants.asi8) == PROFILE_STEP_S * 10**9).all()


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=pd.Timestamp("2015-12-31 23:00").to_pydatetime(),
        max_value=pd.Timestamp("2016-12-31 22:59:59").to_pydatetime(),
    )
)
def test_a_2016_instant_reads_its_own_profile_row(when: Any) -> None:
    stamp = pd.Timestamp(when, tz="UTC")
    row = int(profile_row_index(pd.DatetimeIndex([stamp]))[0])
    assert _row_instants_utc()[row] == stamp.floor("15min")


@pytest.mark.parametrize(
    ("when", "label", "occurrence"),
    [
        ("2016-01-01 00:00", "01.01.2016 01:00", 0),
        ("2016-07-01 12:07", "01.07.2016 14:00", 0),
        ("2025-07-01 12:07", "01.07.2016 14:00", 0),
        ("2025-03-01 08:30", "01.03.2016 09:30", 0),
        ("2024-02-29 12:00", "29.02.2016 13:00", 0),
        ("2024-02-29 23:50", "01.03.2016 00:45", 0),
        ("2025-12-31 23:30", "01.01.2016 00:30", 0),
        ("2031-12-25 18:14", "25.12.2016 19:00", 0),
        # The DST days of 2016: the spring gap and the repeated autumn hour.
        ("2016-03-27 01:00", "27.03.2016 03:00", 0),
        ("2025-10-30 01:20", "30.10.2016 02:15", 1),
    ],
)
def test_times_map_to_the_same_calendar_date_in_2016(
    lv_net_shared: Any, when: str, label: str, occurrence: int
) -> None:
    row = profile_row_index(pd.DatetimeIndex([when], tz="UTC"))[0]
    assert row == _row_of(lv_net_shared, label, occurrence)


def test_the_profile_clock_can_be_moved(lv_net_shared: Any) -> None:
    when = pd.DatetimeIndex(["2025-07-01 12:07"], tz="UTC")
    assert profile_row_index(when, clock_utc_offset_h=0.0)[0] == _row_of(
        lv_net_shared, "01.07.2016 13:00"
    )
    assert profile_row_index(when, clock_utc_offset_h=-5.0)[0] == _row_of(
        lv_net_shared, "01.07.2016 08:00"
    )
    with pytest.raises(GridError, match="clock_utc_offset_h"):
        profile_row_index(when, clock_utc_offset_h=float("nan"))


def test_values_come_from_the_mapped_row(lv_net_shared: Any) -> None:
    net = lv_net_shared
    times = pd.DatetimeIndex(["2025-07-01 12:07", "2024-02-29 06:00"], tz="UTC")
    profiles = background_profiles(net, times)
    absolute = _absolute("1-LV-rural1--0-sw")
    for k, label in enumerate(["01.07.2016 14:00", "29.02.2016 07:00"]):
        row = _row_of(net, label)
        np.testing.assert_array_equal(profiles.load_p_mw[k], absolute[("load", "p_mw")].iloc[row])
        np.testing.assert_array_equal(
            profiles.load_q_mvar[k], absolute[("load", "q_mvar")].iloc[row]
        )
        np.testing.assert_array_equal(profiles.sgen_p_mw[k], absolute[("sgen", "p_mw")].iloc[row])
    assert profiles.from_profiles
    assert profiles.load_p_mw.max() > 0


def test_shapes_follow_steps_and_elements(mv_net_shared: Any) -> None:
    times = pd.date_range("2025-05-01", periods=4 * 24 * 3, freq="15min", tz="UTC")
    profiles = background_profiles(mv_net_shared, times)
    assert profiles.n_steps == len(times)
    assert profiles.load_p_mw.shape == (len(times), len(mv_net_shared.load))
    assert profiles.load_q_mvar.shape == (len(times), len(mv_net_shared.load))
    assert profiles.sgen_p_mw.shape == (len(times), len(mv_net_shared.sgen))
    # The MV PV plants produce at noon and not at midnight.
    pv = (mv_net_shared.sgen["type"] == "PV_MV").to_numpy()
    assert pv.sum() == 2
    assert profiles.sgen_p_mw[48, pv].sum() > 0.1 * mv_net_shared.sgen["p_mw"][pv].sum()
    assert profiles.sgen_p_mw[0, pv].sum() == 0.0


def test_finer_steps_hold_the_15_min_value(lv_net_shared: Any) -> None:
    times = pd.date_range("2025-08-10 10:00", periods=31, freq="1min", tz="UTC")
    profiles = background_profiles(lv_net_shared, times)
    load = profiles.load_p_mw
    for minute in range(15):
        np.testing.assert_array_equal(load[minute], load[0])
        np.testing.assert_array_equal(load[15 + minute], load[15])
    assert not np.array_equal(load[0], load[15])
    np.testing.assert_array_equal(
        load[30], background_profiles(lv_net_shared, times[30:]).load_p_mw[0]
    )


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=pd.Timestamp("1990-01-01").to_pydatetime(),
        max_value=pd.Timestamp("2090-12-31 23:59:59").to_pydatetime(),
    )
)
def test_row_index_matches_calendar_arithmetic(when: Any) -> None:
    stamp = pd.Timestamp(when)
    row = int(profile_row_index(pd.DatetimeIndex([stamp]))[0])
    clock = stamp + pd.Timedelta(hours=1)
    day_2016 = pd.Timestamp(year=2016, month=clock.month, day=clock.day)
    expected = (day_2016.dayofyear - 1) * 96 + (clock.hour * 60 + clock.minute) // 15
    assert row == expected
    assert 0 <= row < 366 * 96


def test_other_time_zones_are_converted_to_utc(lv_net_shared: Any) -> None:
    berlin = pd.DatetimeIndex(["2025-07-01 14:00"], tz="Europe/Berlin")
    utc = pd.DatetimeIndex(["2025-07-01 12:00"], tz="UTC")
    naive = pd.DatetimeIndex(["2025-07-01 12:00"])
    assert profile_row_index(berlin)[0] == profile_row_index(utc)[0]
    assert profile_row_index(naive)[0] == profile_row_index(utc)[0]


def test_scale_multiplies_loads_and_generation(lv_net_shared: Any) -> None:
    times = pd.date_range("2025-06-21 08:00", periods=8, freq="15min", tz="UTC")
    base = background_profiles(lv_net_shared, times)
    doubled = background_profiles(lv_net_shared, times, scale=2.0)
    zero = background_profiles(lv_net_shared, times, scale=0.0)
    np.testing.assert_allclose(doubled.load_p_mw, 2 * base.load_p_mw, rtol=1e-15)
    np.testing.assert_allclose(doubled.load_q_mvar, 2 * base.load_q_mvar, rtol=1e-15)
    np.testing.assert_allclose(doubled.sgen_p_mw, 2 * base.sgen_p_mw, rtol=1e-15)
    assert not zero.load_p_mw.any()
    assert base.sgen_p_mw.sum() > 0


def test_nets_without_profiles_are_constant() -> None:
    net = load_network("pandapower:create_cigre_network_lv")
    times = pd.date_range("2025-01-01", periods=5, freq="1h", tz="UTC")
    profiles = background_profiles(net, times, scale=0.5)
    assert not profiles.from_profiles
    expected = 0.5 * net.load["p_mw"].to_numpy()
    for row in profiles.load_p_mw:
        np.testing.assert_allclose(row, expected)
    assert profiles.sgen_p_mw.shape == (5, len(net.sgen))


@pytest.mark.parametrize("scale", [-1.0, float("nan"), float("inf")])
def test_bad_scale_is_rejected(lv_net_shared: Any, scale: float) -> None:
    times = pd.date_range("2025-01-01", periods=2, freq="15min", tz="UTC")
    with pytest.raises(GridError, match="scale"):
        background_profiles(lv_net_shared, times, scale=scale)


def test_times_must_be_a_datetime_index(lv_net_shared: Any) -> None:
    with pytest.raises(GridError, match="DatetimeIndex"):
        background_profiles(lv_net_shared, ["2025-01-01"])
