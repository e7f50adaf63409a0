"""Building load profiles: SimBench standard profiles, scaling, and user CSV files.

SimBench ships one year (2016, 366 days) of 15-minute active-power profiles per load type, each
relative to the load's rated power (peak close to 1). Names follow the German standard load
profiles: ``H0-*`` households, ``G0``..``G6`` commercial (``G1`` weekday 8-18 h business),
``L0``..``L2`` agriculture, plus SimBench's own grid-level and heat-pump profiles; see
:func:`simbench_load_names`.

All powers are kW drawn from the grid (load convention: positive).
"""

from __future__ import annotations

import difflib
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from qubit_sim.core.csv_input import format_utc, line_list, read_csv_table
from qubit_sim.errors import QubitSimError

__all__ = [
    "PROFILE_STEPS_2016",
    "load_from_csv",
    "profile_at",
    "scale_profile",
    "simbench_load_names",
    "simbench_load_profile",
]

PROFILE_STEPS_2016 = 366 * 96
_SLOT_S = 900
_NS = 1_000_000_000
# Cumulative days before each month in a leap year (2016), to index the profile by month/day.
_LEAP_MONTH_START = np.array(
    [0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335], dtype=np.int64
)


def _profile_file() -> Path:
    # Locate SimBench's data without importing it: the import pulls in pandapower (~1 s).
    spec = importlib.util.find_spec("simbench")
    if spec is None or not spec.submodule_search_locations:
        raise QubitSimError("simbench is not installed; it ships the load profiles")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "networks" / "1-complete_data-mixed-all-0-sw" / "LoadProfile.csv"
    if not path.is_file():
        raise QubitSimError(f"SimBench load profiles not found at {path}")
    return path


@lru_cache(maxsize=1)
def simbench_load_names() -> tuple[str, ...]:
    """Names of the active-power load profiles shipped with SimBench (``"G1-A"``, ``"H0-A"``, ...)."""
    header = pd.read_csv(_profile_file(), sep=";", nrows=0).columns
    return tuple(c[: -len("_pload")] for c in header if c.endswith("_pload"))


@lru_cache(maxsize=32)
def _read_profile(name: str) -> np.ndarray:
    names = simbench_load_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
        raise QubitSimError(
            f"unknown SimBench load profile {name!r}{hint} Examples: H0-A (household), "
            "G1-A (commercial), G0-A, L0-A; all names: qubit_sim.physics.load.simbench_load_names()"
        )
    column = f"{name}_pload"
    # Reading one column of the 50 MB table is ~0.1 s, far cheaper than building a SimBench net.
    table = pd.read_csv(_profile_file(), sep=";", usecols=[column])
    values = table[column].to_numpy(dtype=np.float64)
    if values.shape != (PROFILE_STEPS_2016,):
        raise QubitSimError(
            f"SimBench profile {name!r} has {values.shape[0]} values, expected "
            f"{PROFILE_STEPS_2016} (15-min steps of 2016)"
        )
    values.setflags(write=False)
    return values


def simbench_load_profile(name: str) -> np.ndarray:
    """The SimBench active-power profile ``name``: 35,136 15-minute values of 2016.

    Values are relative to the load's rated power (dimensionless, peak near 1); the first value
    is 1 January 2016 00:00-00:15. Read once per process and shared (read-only array).

    Raises:
        QubitSimError: unknown name (with close matches).
    """
    return _read_profile(name)


def profile_at(
    times_utc: pd.DatetimeIndex,
    profile_15min_2016: np.ndarray,
    tz: str | None = None,
    align_weekdays: bool = False,
) -> np.ndarray:
    """Sample a 2016 15-minute profile at arbitrary instants, ignoring their year.

    Each instant maps to the profile slot with the same month, day and quarter hour (zero-order
    hold within the 15 minutes). Using month/day rather than the day count keeps seasons and fixed
    holidays in place: in a common year 29 February is simply never used, and 31 December reads
    the profile's 31 December. Weekdays follow 2016, not the requested year.

    Args:
        times_utc: Instants (tz-aware, or naive meaning UTC).
        profile_15min_2016: 35,136 values (or any array of that length along axis 0).
        tz: IANA zone whose wall clock the profile follows (e.g. ``"Europe/Berlin"``); ``None``
            reads the profile in UTC.
        align_weekdays: Read the nearest 2016 day (at most 3 days away) with the same weekday as
            the requested day, so weekday/weekend shapes of commercial profiles fall on the right
            days in any year.

    Returns:
        Profile values at ``times_utc``, same units as the profile.
    """
    profile = np.asarray(profile_15min_2016)
    if profile.shape[0] != PROFILE_STEPS_2016:
        raise QubitSimError(
            f"profile has {profile.shape[0]} values; a 15-min 2016 profile has {PROFILE_STEPS_2016}"
        )
    index = pd.DatetimeIndex(times_utc)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    if tz is not None:
        index = index.tz_convert(tz)
    day = _LEAP_MONTH_START[index.month.to_numpy() - 1] + index.day.to_numpy() - 1
    if align_weekdays:
        # 1 January 2016 was a Friday (weekday 4).
        shift = (index.weekday.to_numpy() - (4 + day) % 7 + 3) % 7 - 3
        day = np.clip(day + shift, 0, 365)
    slot = (index.hour.to_numpy() * 60 + index.minute.to_numpy()) // 15
    return profile[day * 96 + slot]


def scale_profile(
    profile: np.ndarray, annual_kwh: float | None = None, peak_kw: float | None = None
) -> np.ndarray:
    """Scale a relative 15-minute profile to kW by annual energy or by peak (exactly one).

    With ``annual_kwh`` the scaled profile's energy over its own length (0.25 h per value) equals
    ``annual_kwh``; with ``peak_kw`` its maximum equals ``peak_kw``.

    Raises:
        QubitSimError: both or neither given, negative targets, or a profile with no energy.
    """
    if (annual_kwh is None) == (peak_kw is None):
        raise QubitSimError("scale_profile needs exactly one of annual_kwh or peak_kw")
    values = np.asarray(profile, dtype=np.float64)
    if annual_kwh is not None:
        if annual_kwh < 0:
            raise QubitSimError(f"annual_kwh must be >= 0, got {annual_kwh}")
        energy = values.sum() * (_SLOT_S / 3600.0)
        if energy <= 0:
            raise QubitSimError("profile has no positive energy; cannot scale by annual_kwh")
        return values * (annual_kwh / energy)
    assert peak_kw is not None
    if peak_kw < 0:
        raise QubitSimError(f"peak_kw must be >= 0, got {peak_kw}")
    peak = values.max()
    if peak <= 0:
        raise QubitSimError("profile has no positive value; cannot scale by peak_kw")
    return values * (peak_kw / peak)


def load_from_csv(
    path: str | Path,
    times_utc: pd.DatetimeIndex,
    method: str = "hold",
    max_gap_s: float | None = None,
    tz: str | None = None,
    max_abs_kw: float | None = None,
) -> np.ndarray:
    """Read a load time series from CSV and sample it at ``times_utc`` [kW].

    Columns: ``time`` and ``p_kw`` [kW], read by the rules of :mod:`qubit_sim.core.csv_input`:
    times with an offset (``Z``, ``+02:00``) are used as written; times without one are local
    time of ``tz`` (``None`` refuses them). Each value holds from its time to the next
    (``method="hold"``, the default: metered interval averages) or is linearly interpolated
    between rows (``method="linear"``: instantaneous samples). The last row holds for one more
    median spacing; the file must cover every requested instant, and no requested instant may
    fall into a gap between rows longer than ``max_gap_s`` (default: twice the median spacing),
    where the value would be invented.

    Args:
        max_abs_kw: If given, a value whose magnitude exceeds it is an error: a unit check for
            files written in W under a ``p_kw`` header.

    Raises:
        QubitSimError: unreadable file, missing columns, unparsable rows (with line numbers),
            non-existent or ambiguous local times, non-increasing times, values above
            ``max_abs_kw``, or a file that does not cover ``times_utc``.
    """
    if method not in ("hold", "linear"):
        raise QubitSimError(f"method {method!r} is not 'hold' or 'linear'")
    table = read_csv_table(path, "load CSV")
    source = table.path
    table.require({"time": "", "p_kw": "kW"})
    times = table.times("time", tz)
    p_kw = table.numbers("p_kw")
    if not np.isfinite(p_kw).all():
        raise table.error(table.number_problem("p_kw", ~np.isfinite(p_kw)))
    if max_abs_kw is not None and np.abs(p_kw).max() > max_abs_kw:
        row = int(np.argmax(np.abs(p_kw)))
        raise table.error(
            f"p_kw reaches {p_kw[row]:,.0f} kW at line {table.lines[row]}, more than the "
            f"{max_abs_kw:,.0f} "
            "kW this site's load can plausibly draw; is the column in W? p_kw must be in kW "
            "(divide by 1000)"
        )
    t_ns = times.as_unit("ns").asi8
    gaps = np.diff(t_ns)
    if (gaps <= 0).any():
        bad = np.concatenate([[False], gaps <= 0])
        raise table.error(f"times must increase strictly; see {line_list(bad, table.lines)}")
    tail_ns = int(np.median(gaps)) if len(gaps) else 0
    index = pd.DatetimeIndex(times_utc)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    at_ns = index.as_unit("ns").asi8
    if len(at_ns) == 0:
        return np.zeros(0)
    # A held last row covers [t_last, t_last + spacing); a linear series ends at t_last itself.
    end_ns = t_ns[-1] + (tail_ns if method == "hold" else 0)
    beyond = at_ns.max() >= end_ns if method == "hold" and tail_ns else at_ns.max() > end_ns
    if at_ns.min() < t_ns[0] or beyond:
        raise QubitSimError(
            f"load CSV {source} covers {format_utc(pd.Timestamp(t_ns[0]))} .. "
            f"{format_utc(pd.Timestamp(end_ns))} but the scenario needs "
            f"{format_utc(index.min())} .. {format_utc(index.max())}; extend the file or shorten "
            "the scenario"
        )
    limit_ns = 2 * tail_ns if max_gap_s is None else int(max_gap_s * _NS)
    if len(gaps):
        row = np.searchsorted(t_ns, at_ns, side="right") - 1
        inside = row[(row < len(gaps)) & (row >= 0)]
        long_gap = np.zeros(len(t_ns), dtype=bool)
        long_gap[inside[gaps[inside] > limit_ns]] = True
        if long_gap.any():
            first = int(np.flatnonzero(long_gap)[0])
            limit = (
                f"twice the file's usual spacing, {limit_ns / _NS:g} s"
                if max_gap_s is None
                else f"max_gap_s = {max_gap_s:g} s"
            )
            raise table.error(
                f"the scenario falls into a gap after {line_list(long_gap, table.lines)} "
                f"(from {format_utc(pd.Timestamp(t_ns[first]))} to "
                f"{format_utc(pd.Timestamp(t_ns[first + 1]))}, longer than {limit}); write the "
                "missing rows (a row holds its value until the next, so repeating the last value "
                "before the gap holds it across)"
                + (", or from Python pass a larger max_gap_s" if max_gap_s is None else "")
            )
    if method == "linear":
        return np.interp(at_ns.astype(np.float64), t_ns.astype(np.float64), p_kw)
    return p_kw[np.searchsorted(t_ns, at_ns, side="right") - 1]
