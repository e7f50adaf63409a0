"""Local time -> UTC: DST gaps and overlaps raise unless the caller decides."""

from __future__ import annotations

import datetime as dt
from functools import cache
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.stack.data import (
    AmbiguousTimeError,
    NonexistentTimeError,
    TimezoneError,
    local_to_utc,
    localize_to_utc,
    utc_to_local,
)

LA = "America/Los_Angeles"
AMS = "Europe/Amsterdam"


def _z(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("local", "tz", "expected"),
    [
        ("2024-07-15T14:30", LA, "2024-07-15T21:30:00Z"),  # PDT, the documented examples
        ("2024-01-15T14:30", LA, "2024-01-15T22:30:00Z"),  # PST
        ("2024-07-15T14:30", AMS, "2024-07-15T12:30:00Z"),
        (dt.datetime(2024, 1, 15, 14, 30), AMS, "2024-01-15T13:30:00Z"),
    ],
)
def test_ordinary_local_times(local: str | dt.datetime, tz: str, expected: str) -> None:
    result = local_to_utc(local, tz)
    assert result.tzinfo is not None and result.utcoffset() == dt.timedelta(0)
    assert _z(result) == expected


@pytest.mark.parametrize(
    ("local", "tz", "after_gap"),
    [
        ("2024-03-10T02:30", LA, "2024-03-10T10:00:00Z"),
        ("2024-03-31T02:30", AMS, "2024-03-31T01:00:00Z"),
        # clocks move 30 minutes here: the gap is 02:00-02:30 local, ending at 15:30Z
        ("2023-10-01T02:10", "Australia/Lord_Howe", "2023-09-30T15:30:00Z"),
    ],
)
def test_gap_times_raise_unless_shifted_forward(local: str, tz: str, after_gap: str) -> None:
    with pytest.raises(NonexistentTimeError) as caught:
        local_to_utc(local, tz)
    message = str(caught.value)
    assert tz in message and "does not exist" in message and "shift_forward" in message
    assert after_gap in message
    # fold does not make a nonexistent time exist
    with pytest.raises(NonexistentTimeError):
        local_to_utc(local, tz, fold=0)
    assert _z(local_to_utc(local, tz, nonexistent="shift_forward")) == after_gap


@pytest.mark.parametrize(
    ("local", "tz", "first", "second"),
    [
        ("2024-11-03T01:30", LA, "2024-11-03T08:30:00Z", "2024-11-03T09:30:00Z"),
        ("2024-10-27T02:30", AMS, "2024-10-27T00:30:00Z", "2024-10-27T01:30:00Z"),
    ],
)
def test_ambiguous_times_raise_unless_a_fold_is_given(
    local: str, tz: str, first: str, second: str
) -> None:
    with pytest.raises(AmbiguousTimeError) as caught:
        local_to_utc(local, tz)
    message = str(caught.value)
    assert "ambiguous" in message and first in message and second in message and "fold=" in message
    assert _z(local_to_utc(local, tz, fold=0)) == first
    assert _z(local_to_utc(local, tz, fold=1)) == second


def test_series_report_the_first_offender_and_how_many() -> None:
    times = ["2024-11-03 00:30", "2024-11-03 01:00", "2024-11-03 01:30", "2024-11-03 02:00"]
    with pytest.raises(AmbiguousTimeError, match=r"2024-11-03 01:00:00.*2 such times.*position 1"):
        localize_to_utc(times, LA)
    resolved = localize_to_utc(times, LA, fold=1)
    assert list(resolved.strftime("%H:%M")) == ["07:30", "09:00", "09:30", "10:00"]


def test_series_can_mark_gap_times_missing() -> None:
    times = pd.DatetimeIndex(["2024-03-10 01:30", "2024-03-10 02:15", None, "2024-03-10 03:15"])
    result = localize_to_utc(times, LA, nonexistent="NaT")
    assert list(result.isna()) == [False, True, True, False]
    assert _z(result[3].to_pydatetime()) == "2024-03-10T10:15:00Z"


def test_offset_carrying_times_are_instants_not_re_localized() -> None:
    aware = dt.datetime(2024, 11, 3, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    assert _z(local_to_utc(aware, LA)) == "2024-11-03T08:30:00Z"
    utc = localize_to_utc(["2024-03-10T02:30:00-08:00", "2024-03-10T10:00:00Z"], LA)
    assert list(utc.strftime("%H:%M")) == ["10:30", "10:00"]


def test_mixed_naive_and_offset_strings_are_refused() -> None:
    with pytest.raises(TimezoneError, match="1 of 2 timestamps carry a UTC offset"):
        localize_to_utc(["2024-03-31T01:30:00+01:00", "2024-03-31T03:30:00"], AMS)


@pytest.mark.parametrize(
    ("zone", "hint"), [("Europe/Amsterdm", "Europe/Amsterdam"), ("america/los_angeles", LA)]
)
def test_unknown_zones_suggest_the_iana_name(zone: str, hint: str) -> None:
    with pytest.raises(TimezoneError, match=f"did you mean '{hint}'"):
        local_to_utc("2024-01-01T00:00", zone)


def test_bad_options_and_naive_instants_are_refused() -> None:
    with pytest.raises(TimezoneError, match="fold must be"):
        local_to_utc("2024-01-01T00:00", LA, fold=2)
    with pytest.raises(TimezoneError, match="nonexistent must be"):
        localize_to_utc(["2024-01-01T00:00"], LA, nonexistent="shift_backward")  # type: ignore[arg-type]
    with pytest.raises(TimezoneError, match="no UTC offset"):
        utc_to_local("2024-01-01T00:00", LA)
    assert utc_to_local("2024-11-03T09:30:00Z", LA).isoformat() == "2024-11-03T01:30:00-08:00"


ZONES = [LA, AMS, "Australia/Lord_Howe", "America/St_Johns", "UTC"]


@cache
def _transitions(zone: str) -> tuple[dt.datetime, ...]:
    """Local wall-clock times (old offset) of the zone's offset changes in 2023-2025."""
    tz = ZoneInfo(zone)
    start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    found = []
    for hour in range(3 * 366 * 24):
        before = start + dt.timedelta(hours=hour)
        after = before + dt.timedelta(hours=1)
        if before.astimezone(tz).utcoffset() != after.astimezone(tz).utcoffset():
            found.append(before.astimezone(tz).replace(tzinfo=None))
    return tuple(found) or (dt.datetime(2024, 6, 1),)


_anywhere = st.datetimes(min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2025, 12, 31))


@st.composite
def _local_times(draw: st.DrawFn) -> tuple[dt.datetime, str]:
    zone = draw(st.sampled_from(ZONES))
    if draw(st.booleans()):
        naive = draw(_anywhere)
    else:  # near a DST transition, where gaps and overlaps are
        naive = draw(st.sampled_from(_transitions(zone))) + dt.timedelta(
            minutes=draw(st.integers(-180, 180)), seconds=draw(st.integers(0, 59))
        )
    return naive.replace(microsecond=0), zone


@settings(max_examples=400, deadline=None)
@given(case=_local_times(), fold=st.sampled_from([0, 1]))
def test_agrees_with_zoneinfo_and_pep_495(case: tuple[dt.datetime, str], fold: int) -> None:
    naive, zone = case
    tz = ZoneInfo(zone)
    instants = [naive.replace(tzinfo=tz, fold=f).astimezone(dt.UTC) for f in (0, 1)]
    wall = naive.replace(tzinfo=tz).astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None)
    if wall != naive:
        with pytest.raises(NonexistentTimeError):
            local_to_utc(naive, zone, fold=fold)
        # shifted forward: the first instant whose wall clock is past the gap
        shifted = local_to_utc(naive, zone, nonexistent="shift_forward")
        assert min(instants) <= shifted <= max(instants)
        assert shifted.astimezone(tz).replace(tzinfo=None) > naive
    elif instants[0] != instants[1]:
        with pytest.raises(AmbiguousTimeError):
            local_to_utc(naive, zone)
        assert local_to_utc(naive, zone, fold=fold) == instants[fold]
        assert local_to_utc(naive, zone, fold=0) == min(instants)
    else:
        assert local_to_utc(naive, zone) == instants[0]
