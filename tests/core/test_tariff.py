"""Tariffs, carbon intensity, demand peaks and bills, checked against hand-computed examples."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.core import tariff as tariff_module
from qubit_sim.core.tariff import (
    DEFAULT_RATE_NAME,
    CarbonIntensity,
    EnergyRate,
    Tariff,
    TariffError,
    bill,
    billing_periods,
    carbon_series,
    demand_peaks_kw,
    emissions_kg,
    energy_cost,
    energy_price_series,
    rate_names,
    tariff_from_qubit,
)
from qubit_sim.errors import QubitSimError

AMS = "Europe/Amsterdam"

# The Qubit L3 documentation example: night split at midnight, inclusive end minutes.
QUBIT_DICT = {
    "energy_rates": [
        {
            "name": "off_peak",
            "rate": 0.08,
            "schedule": {"start_time": "00:00", "end_time": "06:59"},
        },
        {"name": "peak", "rate": 0.25, "schedule": {"start_time": "07:00", "end_time": "22:59"}},
        {
            "name": "off_peak_night",
            "rate": 0.08,
            "schedule": {"start_time": "23:00", "end_time": "23:59"},
        },
    ]
}
TOU = Tariff(
    energy_rates=(
        EnergyRate("off_peak", 0.08, "00:00", "06:59"),
        EnergyRate("peak", 0.25, "07:00", "22:59"),
        EnergyRate("off_peak_night", 0.08, "23:00", "23:59"),
    )
)


def utc(*stamps: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([pd.Timestamp(s).tz_convert("UTC") for s in stamps])


def local_day(day: str, freq: str, tz: str = AMS) -> pd.DatetimeIndex:
    """UTC step starts covering one local calendar day (23 or 25 h on DST days)."""
    start = pd.Timestamp(day)
    end = (start + pd.Timedelta(days=1)).tz_localize(tz)
    return pd.date_range(start.tz_localize(tz), end, freq=freq, inclusive="left").tz_convert("UTC")


# --- energy rates -------------------------------------------------------------------------------


def test_inclusive_end_minute_in_local_time() -> None:
    # winter: Amsterdam is UTC+1
    times = utc(
        "2024-01-15T06:59:59+01:00",
        "2024-01-15T07:00:00+01:00",
        "2024-01-15T22:59:00+01:00",
        "2024-01-15T22:59:59+01:00",
        "2024-01-15T23:00:00+01:00",
        "2024-01-15T00:00:00+01:00",
    )
    prices = energy_price_series(TOU, times, AMS)
    np.testing.assert_array_equal(prices, [0.08, 0.25, 0.25, 0.25, 0.08, 0.08])
    assert list(rate_names(TOU, times, AMS)) == [
        "off_peak",
        "peak",
        "peak",
        "peak",
        "off_peak_night",
        "off_peak",
    ]


def test_qubit_dict_builds_the_same_tariff() -> None:
    assert tariff_from_qubit(QUBIT_DICT) == TOU
    built = tariff_from_qubit(QUBIT_DICT, currency="USD", default_price_per_kwh=0.1)
    assert built.currency == "USD" and built.default_price_per_kwh == 0.1


def test_weekday_and_month_filters_and_first_match_wins() -> None:
    summer = EnergyRate(
        "summer_peak", 0.30, "07:00", "22:59", weekdays=(0, 1, 2, 3, 4), months=(6, 7, 8)
    )
    weekday = EnergyRate(
        "weekday_peak", 0.25, "07:00", "22:59", weekdays=("monday", "TUESDAY", 2, 3, 4)
    )
    tariff = Tariff(energy_rates=(summer, weekday), default_price_per_kwh=0.10)
    assert weekday.weekdays == (0, 1, 2, 3, 4)
    times = utc(
        "2024-07-15T12:00+02:00",  # Monday in July
        "2024-07-13T12:00+02:00",  # Saturday in July
        "2024-01-15T12:00+01:00",  # Monday in January
        "2024-07-15T06:00+02:00",  # Monday in July, before the window
        "2024-09-01T12:00+02:00",  # Sunday
    )
    np.testing.assert_array_equal(
        energy_price_series(tariff, times, AMS), [0.30, 0.10, 0.25, 0.10, 0.10]
    )
    assert list(rate_names(tariff, times, AMS))[:2] == ["summer_peak", DEFAULT_RATE_NAME]
    swapped = Tariff(energy_rates=(weekday, summer), default_price_per_kwh=0.10)
    assert energy_price_series(swapped, times[:1], AMS)[0] == 0.25


def test_weekday_filter_is_evaluated_in_local_time() -> None:
    # Monday 00:30 in Amsterdam is still Sunday in UTC
    tariff = Tariff(
        energy_rates=(EnergyRate("monday", 1.0, weekdays=("monday",)),), default_price_per_kwh=0.0
    )
    times = utc("2024-01-15T00:30+01:00")
    assert times[0].day_name() == "Sunday"
    assert energy_price_series(tariff, times, AMS)[0] == 1.0
    assert energy_price_series(tariff, times, "UTC")[0] == 0.0


def test_wrapping_window() -> None:
    night = EnergyRate("night", 0.08, "23:00", "06:59")
    day = EnergyRate("day", 0.25)
    assert night.wraps_midnight and not day.wraps_midnight
    tariff = Tariff(energy_rates=(night, day))
    times = utc(
        "2024-01-15T22:59+01:00",
        "2024-01-15T23:00+01:00",
        "2024-01-16T00:00+01:00",
        "2024-01-16T06:59:30+01:00",
        "2024-01-16T07:00+01:00",
    )
    np.testing.assert_array_equal(
        energy_price_series(tariff, times, AMS), [0.25, 0.08, 0.08, 0.08, 0.25]
    )
    # filters apply to the local calendar day of each instant: Friday's window does not reach Saturday
    friday = Tariff(
        energy_rates=(EnergyRate("fri_night", 0.05, "23:00", "06:59", weekdays=("friday",)), day)
    )
    times = utc("2024-01-19T23:30+01:00", "2024-01-20T02:00+01:00", "2024-01-19T02:00+01:00")
    np.testing.assert_array_equal(energy_price_series(friday, times, AMS), [0.05, 0.25, 0.05])


def test_single_minute_window() -> None:
    tariff = Tariff(
        energy_rates=(EnergyRate("noon", 9.0, "12:00", "12:00"),), default_price_per_kwh=1.0
    )
    times = utc(
        "2024-01-15T11:59:59Z", "2024-01-15T12:00Z", "2024-01-15T12:00:59Z", "2024-01-15T12:01Z"
    )
    np.testing.assert_array_equal(energy_price_series(tariff, times, "UTC"), [1, 9, 9, 1])


@pytest.mark.parametrize(
    ("day", "n_steps", "n_off_peak"),
    [
        # spring forward: 02:00-02:59 does not exist, so the night before 07:00 has 6 h
        ("2024-03-31", 92, 6 * 4 + 4),
        # fall back: 02:00-02:59 happens twice, so the night before 07:00 has 8 h
        ("2024-10-27", 100, 8 * 4 + 4),
        ("2024-06-12", 96, 7 * 4 + 4),
    ],
)
def test_dst_days_in_amsterdam(day: str, n_steps: int, n_off_peak: int) -> None:
    times = local_day(day, "15min")
    assert len(times) == n_steps
    prices = energy_price_series(TOU, times, AMS)
    assert np.count_nonzero(prices == 0.08) == n_off_peak
    assert np.count_nonzero(prices == 0.25) == 16 * 4  # 07:00-22:59 is always 16 local hours
    assert set(billing_periods(times, AMS, "day")) == {int(day.replace("-", ""))}


def test_peak_follows_the_local_clock_across_dst() -> None:
    # 05:00 UTC is 06:00 local in winter (off-peak) and 07:00 local in summer (peak)
    times = utc("2024-03-30T05:00Z", "2024-03-31T05:00Z")
    np.testing.assert_array_equal(energy_price_series(TOU, times, AMS), [0.08, 0.25])


def test_uncovered_time_without_default_names_the_local_time() -> None:
    peak_only = Tariff(energy_rates=(EnergyRate("peak", 0.25, "07:00", "22:59"),))
    times = utc("2024-01-15T08:00Z", "2024-01-15T05:30Z", "2024-01-15T04:00Z")
    with pytest.raises(QubitSimError, match=r"2024-01-15T06:30:00\+01:00.*default_price_per_kwh"):
        energy_price_series(peak_only, times, AMS)
    with pytest.raises(TariffError, match="06:30"):
        rate_names(peak_only, times, AMS)


def test_naive_times_are_taken_as_utc() -> None:
    naive = pd.DatetimeIndex(["2024-01-15 06:30"])
    assert energy_price_series(TOU, naive, AMS)[0] == 0.25  # 07:30 local


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "7am"}, "'7am' is not a time of day"),
        ({"end": "24:00"}, "outside 00:00..23:59.*'23:59'"),
        ({"start": "12:60"}, "outside 00:00..23:59"),
        ({"start": 700}, "700 is not a time of day"),
        ({"weekdays": ("funday",)}, "'funday' must be an integer 0..6 or one of monday"),
        ({"weekdays": (7,)}, "weekdays value 7 is outside 0..6"),
        ({"weekdays": ()}, "weekdays is empty"),
        ({"weekdays": (True,)}, "weekdays value True"),
        ({"months": (0,)}, "months value 0 is outside 1..12"),
        ({"months": (13,)}, "months value 13"),
        ({"price_per_kwh": float("nan")}, "price must be finite"),
        ({"price_per_kwh": "cheap"}, "price must be a number, got 'cheap'"),
        ({"name": ""}, "name must be a non-empty string"),
    ],
)
def test_bad_energy_rate(kwargs: dict, message: str) -> None:
    fields = {"name": "peak", "price_per_kwh": 0.2, **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        EnergyRate(**fields)
    assert isinstance(info.value, QubitSimError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no energy_rates and no default_price_per_kwh"),
        ({"default_price_per_kwh": 0.2, "billing_period": "year"}, "'year' is not one of month"),
        ({"default_price_per_kwh": 0.2, "demand_window_s": 7 * 60}, "420 must be.*divides a day"),
        ({"default_price_per_kwh": 0.2, "demand_window_s": 0}, "demand_window_s 0"),
        ({"default_price_per_kwh": 0.2, "demand_charge_per_kw": -1}, "must be >= 0, got -1"),
        ({"default_price_per_kwh": 0.2, "export_price_per_kwh": None}, "export_price_per_kwh"),
        ({"energy_rates": ({"name": "x"},)}, "must hold EnergyRate"),
        ({"default_price_per_kwh": 0.2, "currency": ""}, "currency"),
    ],
)
def test_bad_tariff(kwargs: dict, message: str) -> None:
    with pytest.raises(TariffError, match=message):
        Tariff(**kwargs)


def test_bad_time_zone_and_qubit_dict() -> None:
    with pytest.raises(TariffError, match="unknown time zone 'Mars/Olympus'"):
        energy_price_series(TOU, utc("2024-01-01T00:00Z"), "Mars/Olympus")
    with pytest.raises(TariffError, match=r"energy_rates\[0\] has no 'rate'"):
        tariff_from_qubit({"energy_rates": [{"name": "x"}]})


# --- carbon -------------------------------------------------------------------------------------


def test_carbon_constant_and_hourly_profile_in_local_hours() -> None:
    times = utc("2024-01-01T23:00Z", "2024-01-02T11:30Z", "2024-07-01T11:30Z")
    np.testing.assert_array_equal(
        carbon_series(CarbonIntensity.constant(300), times, AMS), [300] * 3
    )
    profile = CarbonIntensity.hourly([100.0 + hour for hour in range(24)])
    # local hours 00, 12 (winter, UTC+1) and 13 (summer, UTC+2)
    np.testing.assert_array_equal(carbon_series(profile, times, AMS), [100, 112, 113])


def test_carbon_csv_is_interpolated(tmp_path) -> None:
    path = tmp_path / "carbon.csv"
    path.write_text(
        "time,g_per_kwh\n"
        "2024-01-01T01:00:00+01:00,100\n"  # 00:00Z, written with an offset
        "2024-01-01T01:00:00Z,200\n"
        "2024-01-01T03:00:00,400\n"  # naive: local time of the zone (AMS, UTC+1) = 02:00Z
    )
    times = utc("2024-01-01T00:00Z", "2024-01-01T00:30Z", "2024-01-01T01:45Z", "2024-01-01T02:59Z")
    spec = CarbonIntensity.from_csv(path)
    np.testing.assert_allclose(carbon_series(spec, times, AMS), [100, 150, 350, 400])
    with pytest.raises(TariffError, match="extend the CSV"):
        carbon_series(spec, utc("2024-01-01T03:01Z"), AMS)
    with pytest.raises(TariffError, match="extend the CSV"):
        carbon_series(spec, utc("2023-12-31T23:59Z"), AMS)


def test_bad_carbon_sources(tmp_path) -> None:
    with pytest.raises(TariffError, match="exactly one"):
        CarbonIntensity()
    with pytest.raises(TariffError, match="exactly one"):
        CarbonIntensity(constant_g_per_kwh=1.0, hourly_g_per_kwh=(1.0,) * 24)
    with pytest.raises(TariffError, match="24 values >= 0.*got 23"):
        CarbonIntensity.hourly([1.0] * 23)
    with pytest.raises(TariffError, match="must be >= 0"):
        CarbonIntensity.constant(-5)
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,g\n2024-01-01,1\n2024-01-02,2\n")
    with pytest.raises(TariffError, match=r"lacks column\(s\) \['g_per_kwh', 'time'\]"):
        carbon_series(CarbonIntensity.from_csv(bad), utc("2024-01-01T00:00Z"), "UTC")
    negative = tmp_path / "negative.csv"
    negative.write_text("time,g_per_kwh\n2024-01-01,1\n2024-01-02,-2\n")
    with pytest.raises(TariffError, match="row 3"):
        carbon_series(CarbonIntensity.from_csv(negative), utc("2024-01-01T00:00Z"), "UTC")
    with pytest.raises(TariffError, match="does not exist"):
        carbon_series(
            CarbonIntensity.from_csv(tmp_path / "nope.csv"), utc("2024-01-01T00:00Z"), "UTC"
        )


def test_emissions() -> None:
    # 10 kW for 30 min = 5 kWh at 400 g/kWh = 2 kg
    np.testing.assert_allclose(
        emissions_kg(np.array([10.0, 0.0]), np.array([400.0, 999.0]), 1800), [2.0, 0.0]
    )


# --- billing periods and demand -----------------------------------------------------------------


def test_billing_period_labels() -> None:
    # local: 2024-12-30 00:30, 2024-12-31 23:59, 2025-01-01 00:00
    times = utc("2024-12-29T23:30Z", "2024-12-31T22:59Z", "2024-12-31T23:00Z")
    np.testing.assert_array_equal(billing_periods(times, AMS, "month"), [202412, 202412, 202501])
    np.testing.assert_array_equal(
        billing_periods(times, AMS, "day"), [20241230, 20241231, 20250101]
    )
    # Monday 2024-12-30 starts ISO week 2025-W01
    np.testing.assert_array_equal(billing_periods(times, AMS, "week"), [202501, 202501, 202501])
    with pytest.raises(TariffError, match="'quarter' is not one of"):
        billing_periods(times, AMS, "quarter")


def test_demand_uses_local_quarter_hour_averages_of_minute_data() -> None:
    times = pd.date_range("2024-01-15T10:00+01:00", periods=60, freq="1min").tz_convert("UTC")
    import_kw = np.zeros(60)
    import_kw[8:23] = 60.0  # 60 kW during 10:08..10:22, 15 minutes that straddle a quarter hour
    peaks = demand_peaks_kw(import_kw, 60, times, AMS, "month")
    assert list(peaks.columns) == ["period_start", "peak_kw", "peak_at"]
    assert list(peaks.index) == [202401]
    # 10:00-10:15 holds 7 of those minutes (28 kW), 10:15-10:30 holds 8 (32 kW); never the 60 kW
    assert peaks["peak_kw"].iloc[0] == pytest.approx(32.0)
    assert peaks["peak_at"].iloc[0] == pd.Timestamp("2024-01-15T10:15+01:00")
    assert peaks["period_start"].iloc[0] == pd.Timestamp("2024-01-01T00:00+01:00")


def test_demand_one_minute_spike_is_averaged_away() -> None:
    times = pd.date_range("2024-01-15T00:00Z", periods=60, freq="1min")
    import_kw = np.r_[np.full(15, 10.0), 100.0, np.full(14, 10.0), np.full(15, 40.0), np.zeros(15)]
    peaks = demand_peaks_kw(import_kw, 60, times, "UTC", "day")
    assert peaks["peak_kw"].iloc[0] == pytest.approx(
        40.0
    )  # the spike window averages (100+140)/15 = 16
    assert peaks["peak_at"].iloc[0] == pd.Timestamp("2024-01-15T00:30Z")


def test_demand_with_steps_equal_to_and_longer_than_the_window() -> None:
    quarter = pd.date_range("2024-01-15T00:05Z", periods=4, freq="15min")
    peaks = demand_peaks_kw(np.array([1.0, 7.0, 3.0, 2.0]), 900, quarter, "UTC", "day")
    assert peaks["peak_kw"].iloc[0] == 7.0
    assert peaks["peak_at"].iloc[0] == pd.Timestamp("2024-01-15T00:20Z")  # used as is, not floored
    hourly = pd.date_range(
        "2024-01-31T22:00Z", periods=4, freq="1h"
    )  # crosses into February (local)
    peaks = demand_peaks_kw(np.array([5.0, 9.0, 4.0, 6.0]), 3600, hourly, AMS, "month")
    assert list(peaks.index) == [202401, 202402]
    np.testing.assert_array_equal(peaks["peak_kw"], [5.0, 9.0])


def test_demand_windows_on_the_repeated_autumn_hour_stay_apart() -> None:
    # 2024-10-27 Amsterdam: 02:00-02:59 happens at 00:00Z (CEST) and again at 01:00Z (CET)
    times = pd.date_range("2024-10-27T00:00Z", periods=120, freq="1min")
    import_kw = np.zeros(120)
    import_kw[0:7] = 60.0  # first 02:00-02:15: 7 min -> 28 kW
    import_kw[67:75] = 60.0  # second 02:00-02:15: 8 min -> 32 kW (merged they would give 30)
    peaks = demand_peaks_kw(import_kw, 60, times, AMS, "day")
    assert peaks["peak_kw"].iloc[0] == pytest.approx(32.0)
    assert peaks["peak_at"].iloc[0] == pd.Timestamp("2024-10-27T01:00Z")


def test_demand_hour_windows_follow_a_half_hour_offset_zone() -> None:
    # Asia/Kolkata is UTC+05:30: local hours start at :30 UTC
    times = pd.date_range("2024-01-15T00:00Z", periods=120, freq="1min")
    import_kw = np.where(np.arange(120) < 30, 50.0, 0.0)  # 00:00-00:29Z = 05:30-05:59 local
    peaks = demand_peaks_kw(import_kw, 60, times, "Asia/Kolkata", "day", window_s=3600)
    assert peaks["peak_kw"].iloc[0] == pytest.approx(50.0)  # a UTC-aligned hour would give 25
    assert peaks["peak_at"].iloc[0] == pd.Timestamp("2024-01-15T05:00+05:30")


def test_bad_demand_input() -> None:
    times = pd.date_range("2024-01-15T00:00Z", periods=3, freq="2min")
    with pytest.raises(TariffError, match="does not divide the demand window 900"):
        demand_peaks_kw(np.ones(3), 120, times, "UTC")
    with pytest.raises(TariffError, match="must be >= 0.*np.clip"):
        demand_peaks_kw(np.array([1.0, -1.0, 0.0]), 60, times, "UTC")
    with pytest.raises(TariffError, match=r"one value per step \(3\)"):
        demand_peaks_kw(np.ones(4), 60, times, "UTC")
    with pytest.raises(TariffError, match="NaN"):
        demand_peaks_kw(np.array([1.0, np.nan, 0.0]), 60, times, "UTC")


# --- costs and bills ----------------------------------------------------------------------------


def test_energy_cost_per_step() -> None:
    # 10 kW for 30 min at 0.2 = 1.0; export 4 kW for 30 min at 0.05 = 0.1 credit
    cost = energy_cost(
        np.array([10.0, 0.0]), np.array([0.0, 4.0]), np.array([0.2, 0.3]), 0.05, 1800
    )
    np.testing.assert_allclose(cost, [1.0, -0.1])
    with pytest.raises(TariffError, match="prices do not match the 2 steps"):
        energy_cost(np.array([1.0, 2.0]), np.zeros(2), np.array([0.1, 0.2, 0.3]), 0.0, 60)


def test_hand_computed_bill() -> None:
    tariff = Tariff(
        energy_rates=(
            EnergyRate("night", 0.10, "23:00", "06:59"),
            EnergyRate("day", 0.30, "07:00", "22:59"),
        ),
        export_price_per_kwh=0.05,
        demand_charge_per_kw=10.0,
        billing_period="month",
    )
    # four hourly steps, local 06:00, 07:00, 12:00 and 23:00 on 31 Jan, then 1 Feb 12:00
    times = utc(
        "2024-01-31T06:00+01:00",
        "2024-01-31T07:00+01:00",
        "2024-01-31T12:00+01:00",
        "2024-01-31T23:00+01:00",
        "2024-02-01T12:00+01:00",
    )
    site_p_kw = np.array([20.0, 40.0, -30.0, 10.0, 25.0])
    result = bill(tariff, site_p_kw, 3600, times, AMS)
    by_name = {item.name: item for item in result.energy}
    assert list(by_name) == ["night", "day"]
    assert by_name["night"].energy_kwh == pytest.approx(30.0)
    assert by_name["night"].charge == pytest.approx(3.0)  # 30 kWh x 0.10
    assert by_name["day"].energy_kwh == pytest.approx(65.0)
    assert by_name["day"].charge == pytest.approx(19.5)  # 65 kWh x 0.30
    assert result.import_kwh == pytest.approx(95.0)
    assert result.export_kwh == pytest.approx(30.0)
    assert result.export_credit == pytest.approx(1.5)  # 30 kWh x 0.05
    assert [item.peak_kw for item in result.demand] == [40.0, 25.0]  # January, February
    assert result.demand[0].peak_at == pd.Timestamp("2024-01-31T07:00+01:00")
    assert result.demand_charge == pytest.approx(650.0)  # (40 + 25) kW x 10
    assert result.total == pytest.approx(3.0 + 19.5 + 650.0 - 1.5)
    as_dict = result.to_dict()
    assert as_dict["total"] == pytest.approx(result.total)
    assert as_dict["demand"][1]["period_start"] == "2024-02-01T00:00:00+01:00"


def test_bill_with_default_price_lists_the_default_rate() -> None:
    tariff = Tariff(
        energy_rates=(EnergyRate("weekend", 0.05, weekdays=(5, 6)),), default_price_per_kwh=0.2
    )
    times = utc("2024-01-13T12:00Z", "2024-01-15T12:00Z")  # Saturday, Monday
    result = bill(tariff, np.array([4.0, 4.0]), 900, times, "UTC")
    assert [(i.name, i.energy_kwh, i.charge) for i in result.energy] == [
        ("weekend", 1.0, 0.05),
        (DEFAULT_RATE_NAME, 1.0, 0.2),
    ]
    assert result.demand_charge == 0.0 and result.total == pytest.approx(0.25)


# --- properties ---------------------------------------------------------------------------------

ZONES = ["UTC", AMS, "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
minutes = st.integers(0, 1439)
hhmm = minutes.map(lambda m: f"{m // 60:02d}:{m % 60:02d}")
rates = st.builds(
    EnergyRate,
    name=st.sampled_from(["a", "b", "c"]),
    price_per_kwh=st.floats(-1, 1, allow_nan=False),
    start=hhmm,
    end=hhmm,
    weekdays=st.none() | st.sets(st.integers(0, 6), min_size=1).map(tuple),
    months=st.none() | st.sets(st.integers(1, 12), min_size=1).map(tuple),
)


def reference_price(tariff: Tariff, instant: datetime, tz: str) -> float:
    """Scalar reference: zoneinfo wall time, wrapped windows split explicitly at midnight."""
    local = instant.astimezone(ZoneInfo(tz))
    minute = local.hour * 60 + local.minute
    for rate in tariff.energy_rates:
        first = int(rate.start[:2]) * 60 + int(rate.start[3:])
        last = int(rate.end[:2]) * 60 + int(rate.end[3:])
        pieces = [(first, last)] if first <= last else [(first, 1439), (0, last)]
        in_window = any(lo <= minute <= hi for lo, hi in pieces)
        day_ok = rate.weekdays is None or local.weekday() in rate.weekdays
        month_ok = rate.months is None or local.month in rate.months
        if in_window and day_ok and month_ok:
            return rate.price_per_kwh
    assert tariff.default_price_per_kwh is not None
    return tariff.default_price_per_kwh


@settings(max_examples=60, deadline=None)
@given(
    energy_rates=st.lists(rates, min_size=0, max_size=4),
    seconds=st.lists(st.integers(1_672_531_200, 1_767_225_600), min_size=1, max_size=40),
    tz=st.sampled_from(ZONES),
)
def test_prices_match_a_scalar_reference(energy_rates, seconds, tz) -> None:
    tariff = Tariff(energy_rates=tuple(energy_rates), default_price_per_kwh=0.5)
    times = pd.to_datetime(seconds, unit="s", utc=True)
    expected = [reference_price(tariff, datetime.fromtimestamp(s, UTC), tz) for s in seconds]
    np.testing.assert_array_equal(energy_price_series(tariff, times, tz), expected)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    step_s=st.sampled_from([60, 300]),
    start_minute=st.integers(0, 2 * 1440),
)
def test_demand_peaks_match_pandas_resample(seed, step_s, start_minute) -> None:
    # Amsterdam offsets are whole hours, so local quarter hours are UTC quarter hours
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-10-25T00:00Z") + pd.Timedelta(minutes=start_minute)
    times = pd.date_range(start, periods=3 * 86400 // step_s, freq=f"{step_s}s")
    import_kw = rng.gamma(2.0, 10.0, len(times))
    peaks = demand_peaks_kw(import_kw, step_s, times, AMS, "day")
    means = pd.Series(import_kw, times).resample("15min").mean().dropna()
    per_day = means.groupby(means.index.tz_convert(AMS).date).max()
    np.testing.assert_allclose(peaks["peak_kw"].to_numpy(), per_day.to_numpy())
    assert np.all(peaks["peak_kw"].to_numpy() <= import_kw.max() + 1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_steps=st.integers(1, 300), tz=st.sampled_from(ZONES))
def test_bill_adds_up(seed, n_steps, tz) -> None:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-03-30T12:00Z", periods=n_steps, freq="15min")
    site_p_kw = rng.normal(5.0, 20.0, n_steps)
    result = bill(TOU, site_p_kw, 900, times, tz)
    imports, exports = np.clip(site_p_kw, 0, None), np.clip(-site_p_kw, 0, None)
    prices = energy_price_series(TOU, times, tz)
    steps = energy_cost(imports, exports, prices, TOU.export_price_per_kwh, 900)
    assert result.energy_charge - result.export_credit == pytest.approx(steps.sum())
    assert sum(item.energy_kwh for item in result.energy) == pytest.approx(imports.sum() / 4)
    assert result.export_kwh == pytest.approx(exports.sum() / 4)


def test_module_exports_are_pinned() -> None:
    assert sorted(tariff_module.__all__) == sorted(
        [
            "BILLING_PERIODS",
            "DEFAULT_RATE_NAME",
            "WEEKDAY_NAMES",
            "Bill",
            "CarbonIntensity",
            "DemandCharge",
            "EnergyRate",
            "RateCharge",
            "Tariff",
            "TariffError",
            "bill",
            "billing_periods",
            "carbon_series",
            "demand_peaks_kw",
            "emissions_kg",
            "energy_cost",
            "energy_price_series",
            "rate_names",
            "tariff_from_qubit",
        ]
    )
    for name in tariff_module.__all__:
        assert hasattr(tariff_module, name)
