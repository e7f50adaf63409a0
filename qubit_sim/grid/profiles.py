"""Background loads and generation of a feeder over the scenario's time steps.

SimBench nets ship one year (2016) of 15-min profiles for every load and static generator. A
scenario may start in any year and step at any resolution, so each scenario time is mapped onto
that profile year:

* **The profile clock.** The 35,136 rows are a uniform 15-min grid over 2016 on a fixed UTC+1 clock
  (German standard time; SimBench labels the rows in German wall time, which adds the daylight
  saving hour in summer). A scenario time [UTC] is first read on that clock, so a 2016 scenario
  gets exactly the profile of its instant. ``clock_utc_offset_h`` moves the clock, e.g. to play
  the German daily pattern on another site's standard time. Daylight saving is not modelled.
* **Calendar date, ignoring the year.** A time on month ``m``, day ``d`` of the profile clock reads
  the 2016 profile of month ``m``, day ``d`` (2016 is a leap year, so every date exists). In
  common years this is the profile with the same date, not the same ordinal day, so seasons and
  holidays such as Dec 25 line up; Feb 29 of a leap scenario year reads the 2016 Feb 29 profile
  and common years never use it. Weekdays do not line up across years.
* **Zero-order hold.** A time inside a 15-min slot reads that slot's value (``12:07`` reads
  ``12:00``); steps finer than 15 min therefore see a staircase, not an interpolation.

Storage and ``gen`` profiles are not returned: those elements keep the values set in the net.
Nets without profiles (pandapower's built-in networks) get constant rows at their ``p_mw`` /
``q_mvar``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qubit_sim.errors import GridError

if TYPE_CHECKING:  # pragma: no cover
    from pandapower.auxiliary import pandapowerNet

__all__ = [
    "PROFILE_CLOCK_UTC_OFFSET_H",
    "PROFILE_STEP_S",
    "PROFILE_YEAR",
    "BackgroundProfiles",
    "background_profiles",
    "profile_row_index",
]

PROFILE_YEAR = 2016
PROFILE_STEP_S = 900
#: UTC offset of the clock SimBench profiles run on [h] (German standard time, no DST).
PROFILE_CLOCK_UTC_OFFSET_H = 1.0
_STEPS_PER_DAY = 86400 // PROFILE_STEP_S
_PROFILE_ROWS = 366 * _STEPS_PER_DAY
# Ordinal day (0-based) of the first of each month in the leap profile year.
_MONTH_START = np.cumsum([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30])


@dataclass(frozen=True)
class BackgroundProfiles:
    """Feeder loads and static generation per scenario step, in ``net.load`` / ``net.sgen`` order.

    Values are what goes into ``net.load.p_mw`` etc. before pandapower's ``scaling`` column.

    Attributes:
        times_utc: The scenario times the rows belong to.
        load_p_mw: Active power of each load, shape ``(n_steps, n_load)`` [MW].
        load_q_mvar: Reactive power of each load, shape ``(n_steps, n_load)`` [Mvar].
        sgen_p_mw: Active power of each static generator, shape ``(n_steps, n_sgen)`` [MW],
            generator convention (positive = producing).
        from_profiles: True if read from SimBench profiles, False if held constant.
    """

    times_utc: pd.DatetimeIndex
    load_p_mw: np.ndarray
    load_q_mvar: np.ndarray
    sgen_p_mw: np.ndarray
    from_profiles: bool

    @property
    def n_steps(self) -> int:
        """Number of scenario steps (rows)."""
        return int(self.load_p_mw.shape[0])


def _as_utc(times_utc: pd.DatetimeIndex) -> pd.DatetimeIndex:
    if not isinstance(times_utc, pd.DatetimeIndex):
        raise GridError(
            f"times_utc must be a pandas.DatetimeIndex, got {type(times_utc).__name__}; "
            "build one with pandas.date_range(start, periods=n, freq='15min', tz='UTC')"
        )
    if times_utc.tz is None:
        return times_utc.tz_localize("UTC")
    return times_utc.tz_convert("UTC")


def profile_row_index(
    times_utc: pd.DatetimeIndex, clock_utc_offset_h: float = PROFILE_CLOCK_UTC_OFFSET_H
) -> np.ndarray:
    """Row of the 2016 15-min profile table that each scenario time reads [index].

    The time is read on the profile clock (UTC + ``clock_utc_offset_h``), then mapped to the same
    calendar date in 2016 and the 15-min slot containing its time of day (see the module
    docstring). Naive times are taken as UTC.
    """
    if not math.isfinite(clock_utc_offset_h) or abs(clock_utc_offset_h) > 14:
        raise GridError(
            f"clock_utc_offset_h must be a UTC offset in hours (-14..14), got {clock_utc_offset_h!r}"
        )
    times = _as_utc(times_utc).tz_convert(None) + pd.Timedelta(hours=clock_utc_offset_h)
    day = _MONTH_START[times.month.to_numpy() - 1] + times.day.to_numpy() - 1
    seconds = times.hour.to_numpy() * 3600 + times.minute.to_numpy() * 60 + times.second.to_numpy()
    return (day * _STEPS_PER_DAY + seconds // PROFILE_STEP_S).astype(np.int64)


def _column_block(table: pd.DataFrame, index: pd.Index, element: str) -> np.ndarray:
    missing = index.difference(table.columns)
    if len(missing):
        raise GridError(
            f"SimBench profiles have no column for {element} {list(missing[:5])}; "
            "the net's elements and its profiles do not match"
        )
    values = table.reindex(columns=index).to_numpy(dtype=np.float64)
    if values.shape[0] != _PROFILE_ROWS:
        raise GridError(
            f"{element} profiles have {values.shape[0]} rows, expected {_PROFILE_ROWS} "
            f"(one leap year at {PROFILE_STEP_S} s)"
        )
    return values


def _has_profiles(net: Any) -> bool:
    profiles: Any = getattr(net, "profiles", None)
    if not isinstance(profiles, dict) or "load" not in profiles:
        return False
    return len(profiles["load"]) > 0


def background_profiles(
    net: pandapowerNet,
    times_utc: pd.DatetimeIndex,
    scale: float = 1.0,
    *,
    clock_utc_offset_h: float = PROFILE_CLOCK_UTC_OFFSET_H,
) -> BackgroundProfiles:
    """Loads and PV of the feeder at each time of ``times_utc``, multiplied by ``scale``.

    With SimBench profiles, each time is read on the profile clock (UTC+1 by default) and reads
    the 2016 profile of the same calendar date and the 15-min slot that contains it (zero-order
    hold; Feb 29 only in leap years; see the module docstring). Without profiles, every row is the
    net's own ``p_mw`` / ``q_mvar``.

    Args:
        net: The feeder.
        times_utc: Scenario times [UTC]; naive times are taken as UTC.
        scale: Factor on every load and generator value [-], e.g. 1.2 for 20 % more load and PV.
        clock_utc_offset_h: UTC offset of the clock the profiles' time of day is read on [h].

    Raises:
        GridError: bad times, a negative or non-finite scale, or profiles that do not fit the net.
    """
    if not np.isfinite(scale) or scale < 0:
        raise GridError(f"profile scale must be a finite number >= 0, got {scale!r}")
    times = _as_utc(times_utc)
    n_steps = len(times)
    if _has_profiles(net):
        import simbench

        absolute = simbench.get_absolute_values(net, profiles_instead_of_study_cases=True)
        rows = profile_row_index(times, clock_utc_offset_h)
        load_p = _column_block(absolute[("load", "p_mw")], net.load.index, "load")[rows]
        load_q = _column_block(absolute[("load", "q_mvar")], net.load.index, "load")[rows]
        if len(net.sgen):
            sgen_p = _column_block(absolute[("sgen", "p_mw")], net.sgen.index, "sgen")[rows]
        else:
            sgen_p = np.zeros((n_steps, 0))
        from_profiles = True
    else:
        ones = np.ones((n_steps, 1))
        load_p = ones * net.load["p_mw"].to_numpy(dtype=np.float64)
        load_q = ones * net.load["q_mvar"].to_numpy(dtype=np.float64)
        sgen_p = ones * net.sgen["p_mw"].to_numpy(dtype=np.float64)
        from_profiles = False
    return BackgroundProfiles(
        times_utc=times,
        load_p_mw=np.ascontiguousarray(load_p * scale),
        load_q_mvar=np.ascontiguousarray(load_q * scale),
        sgen_p_mw=np.ascontiguousarray(sgen_p * scale),
        from_profiles=from_profiles,
    )
