"""Tariffs, carbon intensity, demand peaks and bills.

Energy rates follow the Qubit tariff shape: named rates with ``HH:MM`` windows whose **end minute is
inclusive** (``07:00``-``22:59`` covers 07:00:00 up to 22:59:59), with optional weekday and month
filters. Windows are evaluated in **site-local time** (an IANA zone), so a 07:00 peak starts at 07:00
on the wall clock in winter and in summer. A window may wrap midnight (``23:00``-``06:59``); it is
then the union of ``23:00``-``23:59`` and ``00:00``-``06:59``, and the weekday and month filters
apply to the local calendar day of each instant. Where several rates match, the first listed wins;
uncovered instants use ``default_price_per_kwh``.

Instead of rates, a tariff may carry a :class:`~qubit_sim.core.price_series.PriceSeries` (dynamic
prices, e.g. day-ahead, read from a CSV): energy is then priced by the series, and export too when
the series has export prices (:meth:`Tariff.export_prices`); its rate name is
:data:`~qubit_sim.core.price_series.PRICE_SERIES_RATE_NAME`.

Every function takes the UTC start instant of each step. A step is priced at its start instant.
Powers follow the load convention at the site bus: ``site_p_kw > 0`` imports, ``< 0`` exports.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from qubit_sim.core.csv_input import format_utc, gap_needed, read_csv_table
from qubit_sim.core.price_series import PRICE_SERIES_RATE_NAME, PriceSeries, TariffError
from qubit_sim.errors import QubitSimError
from qubit_sim.units import SECONDS_PER_HOUR

__all__ = [
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

WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
BILLING_PERIODS = ("month", "week", "day")
DEFAULT_RATE_NAME = "default"
"""Rate name reported for instants no energy rate covers (priced at ``default_price_per_kwh``)."""

_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TariffError(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not np.isfinite(number):
        raise TariffError(f"{what} must be finite, got {value!r}")
    return number


def _minute_of_day(text: Any, what: str) -> int:
    match = _HHMM.match(text) if isinstance(text, str) else None
    if match is None:
        raise TariffError(f"{what} {text!r} is not a time of day; write 'HH:MM', e.g. '07:00'")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise TariffError(
            f"{what} {text!r} is outside 00:00..23:59; the end minute is inclusive, "
            "so a window up to midnight ends at '23:59'"
        )
    return hour * 60 + minute


def _int_set(values: Any, what: str, low: int, high: int, names: Sequence[str] = ()) -> tuple:
    if isinstance(values, str | int):
        values = (values,)
    result = set()
    for value in values:
        if isinstance(value, str) and value.strip().lower() in names:
            result.add(names.index(value.strip().lower()))
        elif isinstance(value, int | np.integer) and not isinstance(value, bool):
            if not low <= int(value) <= high:
                raise TariffError(f"{what} value {value!r} is outside {low}..{high}")
            result.add(int(value))
        else:
            hint = f" or one of {', '.join(names)}" if names else ""
            raise TariffError(f"{what} value {value!r} must be an integer {low}..{high}{hint}")
    if not result:
        raise TariffError(f"{what} is empty; leave it out (None) to apply on every one")
    return tuple(sorted(result))


@dataclass(frozen=True)
class EnergyRate:
    """One named energy rate with a local time-of-day window.

    Attributes:
        name: Rate name shown on bills, e.g. ``"peak"``. Several entries may share a name.
        price_per_kwh: Import price [currency/kWh]; may be negative.
        start: First minute of the window, local ``"HH:MM"``.
        end: Last minute of the window, inclusive, local ``"HH:MM"``; ``end < start`` wraps midnight.
        weekdays: Local weekdays the rate applies on, Monday=0 .. Sunday=6 (names such as
            ``"monday"`` are accepted and normalised); None means every day.
        months: Local months 1..12 the rate applies in; None means every month.

    Raises:
        TariffError: (a ValueError) naming the bad field and value.
    """

    name: str
    price_per_kwh: float
    start: str = "00:00"
    end: str = "23:59"
    weekdays: tuple[int, ...] | None = None
    months: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise TariffError(f"energy rate name must be a non-empty string, got {self.name!r}")
        what = f"energy rate {self.name!r}"
        object.__setattr__(self, "price_per_kwh", _finite(self.price_per_kwh, f"{what} price"))
        _minute_of_day(self.start, f"{what} start")
        _minute_of_day(self.end, f"{what} end")
        if self.weekdays is not None:
            days = _int_set(self.weekdays, f"{what} weekdays", 0, 6, WEEKDAY_NAMES)
            object.__setattr__(self, "weekdays", days)
        if self.months is not None:
            object.__setattr__(self, "months", _int_set(self.months, f"{what} months", 1, 12))

    @property
    def wraps_midnight(self) -> bool:
        """True when the window runs past midnight (``end`` earlier than ``start``)."""
        return _minute_of_day(self.end, "end") < _minute_of_day(self.start, "start")

    def minute_mask(self, minute_of_day: np.ndarray) -> np.ndarray:
        """Which local minutes-of-day [0..1439] fall in the window (end minute inclusive)."""
        first = _minute_of_day(self.start, "start")
        last = _minute_of_day(self.end, "end")
        if first <= last:
            return (minute_of_day >= first) & (minute_of_day <= last)
        return (minute_of_day >= first) | (minute_of_day <= last)


@dataclass(frozen=True)
class Tariff:
    """A site's import/export tariff.

    Attributes:
        currency: ISO 4217 code all prices are in.
        energy_rates: Time-of-use rates; the first matching one wins.
        default_price_per_kwh: Import price [currency/kWh] where no rate matches; None makes an
            uncovered instant an error.
        export_price_per_kwh: Price paid for exported energy [currency/kWh].
        demand_charge_per_kw: Charge per kW of the billing-period peak [currency/kW].
        demand_window_s: Averaging window of the demand peak [s]; divides a day.
        billing_period: ``"month"``, ``"week"`` (ISO, Monday first) or ``"day"``, local calendar.
        price_series: Dynamic prices pricing every instant instead of ``energy_rates`` and
            ``default_price_per_kwh`` (which must then be empty and None); its export prices,
            when it has them, replace ``export_price_per_kwh``.
    """

    currency: str = "EUR"
    energy_rates: tuple[EnergyRate, ...] = ()
    default_price_per_kwh: float | None = None
    export_price_per_kwh: float = 0.0
    demand_charge_per_kw: float = 0.0
    demand_window_s: int = 900
    billing_period: str = "month"
    price_series: PriceSeries | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.currency, str) or not self.currency.strip():
            raise TariffError(
                f"tariff currency must be a code such as 'EUR', got {self.currency!r}"
            )
        rates = tuple(self.energy_rates)
        for rate in rates:
            if not isinstance(rate, EnergyRate):
                raise TariffError(f"tariff energy_rates must hold EnergyRate, got {rate!r}")
        object.__setattr__(self, "energy_rates", rates)
        if self.default_price_per_kwh is not None:
            price = _finite(self.default_price_per_kwh, "tariff default_price_per_kwh")
            object.__setattr__(self, "default_price_per_kwh", price)
        elif not rates and self.price_series is None:
            raise TariffError(
                "tariff has no energy_rates and no default_price_per_kwh (nor a price series); set one"
            )
        if self.price_series is not None:
            if not isinstance(self.price_series, PriceSeries):
                raise TariffError(
                    f"tariff price_series must be a PriceSeries, got {self.price_series!r}"
                )
            if rates or self.default_price_per_kwh is not None:
                raise TariffError(
                    "tariff has a price series and energy_rates or default_price_per_kwh: the "
                    "series prices every instant, so give one or the other"
                )
        export = _finite(self.export_price_per_kwh, "tariff export_price_per_kwh")
        object.__setattr__(self, "export_price_per_kwh", export)
        demand = _finite(self.demand_charge_per_kw, "tariff demand_charge_per_kw")
        if demand < 0:
            raise TariffError(f"tariff demand_charge_per_kw must be >= 0, got {demand}")
        object.__setattr__(self, "demand_charge_per_kw", demand)
        window = self.demand_window_s
        if isinstance(window, bool) or not isinstance(window, int) or window <= 0 or 86400 % window:
            raise TariffError(
                f"tariff demand_window_s {window!r} must be a positive whole number of seconds "
                "that divides a day, e.g. 900 (15 min) or 3600"
            )
        _check_period(self.billing_period)

    def export_prices(self, times_utc: pd.DatetimeIndex) -> np.ndarray:
        """Export price [currency/kWh] at each UTC instant: the price series' export prices if
        it has them, else the constant ``export_price_per_kwh``.

        Raises:
            TariffError: an instant the price series does not cover.
        """
        series = self.price_series
        exports = None if series is None else series.export_prices(times_utc)
        if exports is None:
            return np.full(len(times_utc), self.export_price_per_kwh)
        return exports


def _check_period(period: str) -> None:
    if period not in BILLING_PERIODS:
        raise TariffError(f"billing period {period!r} is not one of {', '.join(BILLING_PERIODS)}")


def _local_times(times_utc: Any, tz: str) -> pd.DatetimeIndex:
    """Times as a site-local DatetimeIndex; naive input is taken as UTC."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise TariffError(
            f"unknown time zone {tz!r}; use an IANA name such as 'Europe/Amsterdam'"
        ) from exc
    index = pd.DatetimeIndex(times_utc)
    if index.tz is None:
        index = index.tz_localize("UTC")
    # by name, not as a ZoneInfo object: pandas' calendar fields are ~10x faster that way
    return index.tz_convert(tz)


def _rate_index(tariff: Tariff, local: pd.DatetimeIndex) -> np.ndarray:
    """Index of the applying rate per instant; -1 where none matches."""
    minute = local.hour.to_numpy() * 60 + local.minute.to_numpy()
    weekday = local.dayofweek.to_numpy()
    month = local.month.to_numpy()
    chosen = np.full(len(local), -1, dtype=np.int64)
    free = np.ones(len(local), dtype=bool)
    for number, rate in enumerate(tariff.energy_rates):
        match = free & rate.minute_mask(minute)
        if rate.weekdays is not None:
            match &= np.isin(weekday, rate.weekdays)
        if rate.months is not None:
            match &= np.isin(month, rate.months)
        chosen[match] = number
        free &= ~match
    if tariff.default_price_per_kwh is None and not bool(np.all(chosen >= 0)):
        first = local[int(np.argmax(chosen < 0))]
        raise TariffError(
            f"no energy rate covers local time {first.isoformat()} "
            f"({WEEKDAY_NAMES[first.dayofweek]}, month {first.month}); add a rate covering it "
            "or set default_price_per_kwh"
        )
    return chosen


def energy_price_series(tariff: Tariff, times_utc: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """Import price [currency/kWh] at each UTC instant, windows evaluated in local zone ``tz``.

    Raises:
        TariffError: unknown zone, an instant no rate covers while there is no default price, or
            an instant the tariff's price series does not cover.
    """
    local = _local_times(times_utc, tz)
    if tariff.price_series is not None:
        return tariff.price_series.import_prices(local)
    return _prices(tariff)[_rate_index(tariff, local)]


def _prices(tariff: Tariff) -> np.ndarray:
    """Rate prices followed by the default price, so that index -1 (no rate) picks the default."""
    prices = [rate.price_per_kwh for rate in tariff.energy_rates]
    prices.append(np.nan if tariff.default_price_per_kwh is None else tariff.default_price_per_kwh)
    return np.asarray(prices, dtype=float)


def rate_names(tariff: Tariff, times_utc: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """Name of the rate applying at each UTC instant (:data:`DEFAULT_RATE_NAME` if none;
    :data:`PRICE_SERIES_RATE_NAME` under a price series)."""
    local = _local_times(times_utc, tz)
    if tariff.price_series is not None:
        tariff.price_series.import_prices(local)  # the same coverage check as the prices
        return np.full(len(local), PRICE_SERIES_RATE_NAME, dtype=object)
    chosen = _rate_index(tariff, local)
    names = [rate.name for rate in tariff.energy_rates] + [DEFAULT_RATE_NAME]
    return np.asarray(names, dtype=object)[chosen]


@dataclass(frozen=True)
class CarbonIntensity:
    """Grid carbon intensity: set exactly one source.

    Attributes:
        constant_g_per_kwh: Constant intensity [gCO2/kWh].
        hourly_g_per_kwh: 24 values [gCO2/kWh], one per local hour 0..23.
        csv_path: CSV with columns ``time`` (ISO 8601) and ``g_per_kwh``, linearly interpolated
            between rows (rows may come in any order). Times with an offset (``Z``, ``+01:00``)
            are used as written; naive times are local time of the zone given to
            :func:`carbon_series` (:mod:`qubit_sim.core.csv_input`). The last value is held for
            one sample spacing past the last row; beyond that is an error.
    """

    constant_g_per_kwh: float | None = None
    hourly_g_per_kwh: tuple[float, ...] | None = None
    csv_path: Path | str | None = None

    def __post_init__(self) -> None:
        given = [self.constant_g_per_kwh, self.hourly_g_per_kwh, self.csv_path]
        if sum(value is not None for value in given) != 1:
            raise TariffError(
                "carbon intensity needs exactly one of constant_g_per_kwh, hourly_g_per_kwh, csv_path"
            )
        if self.constant_g_per_kwh is not None:
            value = _finite(self.constant_g_per_kwh, "carbon constant_g_per_kwh")
            if value < 0:
                raise TariffError(f"carbon constant_g_per_kwh must be >= 0, got {value}")
            object.__setattr__(self, "constant_g_per_kwh", value)
        if self.hourly_g_per_kwh is not None:
            profile = tuple(_finite(v, "carbon hourly value") for v in self.hourly_g_per_kwh)
            if len(profile) != 24 or min(profile) < 0:
                raise TariffError(
                    f"carbon hourly_g_per_kwh needs 24 values >= 0 (local hours 0..23), "
                    f"got {len(profile)} values with minimum {min(profile, default=None)}"
                )
            object.__setattr__(self, "hourly_g_per_kwh", profile)
        if self.csv_path is not None:
            object.__setattr__(self, "csv_path", Path(self.csv_path))

    @classmethod
    def constant(cls, g_per_kwh: float) -> CarbonIntensity:
        """A constant intensity [gCO2/kWh]."""
        return cls(constant_g_per_kwh=g_per_kwh)

    @classmethod
    def hourly(cls, values: Sequence[float]) -> CarbonIntensity:
        """A 24-value profile [gCO2/kWh] by local hour."""
        return cls(hourly_g_per_kwh=tuple(values))

    @classmethod
    def from_csv(cls, path: str | Path) -> CarbonIntensity:
        """A time series read from a CSV (``time``, ``g_per_kwh``)."""
        return cls(csv_path=Path(path))


def _read_carbon_csv(path: Path, tz: str) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise TariffError(f"carbon intensity CSV {str(path)!r} does not exist")
    try:
        table = read_csv_table(path, "carbon intensity CSV")
    except QubitSimError as exc:
        raise TariffError(str(exc)) from exc
    missing = {"time", "g_per_kwh"} - set(table.frame.columns)
    if missing:
        raise TariffError(
            f"carbon intensity CSV {str(path)!r} lacks column(s) {sorted(missing)}; "
            f"found {list(table.frame.columns)}"
        )
    if len(table.frame) < 2:
        raise TariffError(f"carbon intensity CSV {str(path)!r} needs at least 2 rows")
    try:
        times = table.times("time", tz)
    except QubitSimError as exc:
        raise TariffError(str(exc)) from exc
    values = table.numbers("g_per_kwh")
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        row = int(np.argmax(bad))
        written = str(table.frame["g_per_kwh"].iloc[row]) or "(empty)"
        raise TariffError(
            f"carbon intensity CSV {str(path)!r} row {table.lines[row]}: g_per_kwh {written} "
            "must be a number >= 0"
        )
    seconds = times.as_unit("s").asi8
    order = np.argsort(seconds, kind="stable")
    seconds, values = seconds[order], values[order]
    if np.any(np.diff(seconds) == 0):
        repeated = int(np.flatnonzero(np.diff(seconds) == 0)[0])
        raise TariffError(
            f"carbon intensity CSV {str(path)!r} repeats the time "
            f"{format_utc(pd.Timestamp(seconds[repeated], unit='s'))}"
        )
    return seconds, values


def carbon_series(spec: CarbonIntensity, times_utc: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """Carbon intensity [gCO2/kWh] at each UTC instant (hourly profiles use local hours).

    A CSV's times without an offset are local time of ``tz``.

    Raises:
        TariffError: unknown zone, unreadable CSV, or instants outside the CSV's time range.
    """
    local = _local_times(times_utc, tz)
    if spec.constant_g_per_kwh is not None:
        return np.full(len(local), spec.constant_g_per_kwh)
    if spec.hourly_g_per_kwh is not None:
        return np.asarray(spec.hourly_g_per_kwh)[local.hour.to_numpy()]
    assert spec.csv_path is not None
    sample_s, values = _read_carbon_csv(Path(spec.csv_path), tz)
    wanted_s = local.tz_convert("UTC").as_unit("s").asi8
    hold_s = int(np.median(np.diff(sample_s)))
    outside = (wanted_s < sample_s[0]) | (wanted_s > sample_s[-1] + hold_s)
    if outside.any():
        span = [format_utc(pd.Timestamp(s, unit="s")) for s in (sample_s[0], sample_s[-1])]
        wanted = [format_utc(pd.Timestamp(s, unit="s")) for s in (wanted_s.min(), wanted_s.max())]
        raise TariffError(
            f"carbon intensity CSV {str(spec.csv_path)!r} covers {span[0]} .. {span[1]} (held "
            f"{hold_s:g} s past its last row) but the scenario needs {wanted[0]} .. {wanted[1]}; "
            "extend the CSV to the whole run"
        )
    gap = gap_needed(sample_s, wanted_s)
    if gap is not None:
        before, after = (format_utc(pd.Timestamp(s, unit="s")) for s in gap)
        raise TariffError(
            f"carbon intensity CSV {str(spec.csv_path)!r} has no rows between {before} and "
            f"{after}, more than twice its usual spacing of {hold_s:g} s, and the scenario runs "
            "through that gap; write the missing rows (intensity is interpolated only between "
            "neighbouring rows)"
        )
    return np.interp(wanted_s, sample_s, values)


def emissions_kg(import_kw: np.ndarray, g_per_kwh: np.ndarray | float, step_s: float) -> np.ndarray:
    """Emissions [kg CO2] of each step's grid import [kW] at intensity [gCO2/kWh]."""
    energy_kwh = np.asarray(import_kw, dtype=float) * (step_s / SECONDS_PER_HOUR)
    return energy_kwh * np.asarray(g_per_kwh, dtype=float) / 1000.0


def billing_periods(times_utc: pd.DatetimeIndex, tz: str, period: str = "month") -> np.ndarray:
    """Billing-period label of each instant in the local calendar.

    Labels are integers that grow with time: ``YYYYMM`` for months, ``YYYYWW`` (ISO year and week)
    for weeks, ``YYYYMMDD`` for days.
    """
    _check_period(period)
    return _period_labels(_local_times(times_utc, tz), period)


def _period_labels(local: pd.DatetimeIndex, period: str) -> np.ndarray:
    year, month = local.year.to_numpy(np.int64), local.month.to_numpy(np.int64)
    if period == "month":
        return year * 100 + month
    if period == "day":
        return year * 10000 + month * 100 + local.day.to_numpy(np.int64)
    iso = local.isocalendar()
    return iso["year"].to_numpy(np.int64) * 100 + iso["week"].to_numpy(np.int64)


def _period_start(label: int, period: str, zone: Any) -> pd.Timestamp:
    if period == "month":
        naive = pd.Timestamp(year=label // 100, month=label % 100, day=1)
    elif period == "day":
        naive = pd.Timestamp(year=label // 10000, month=label // 100 % 100, day=label % 100)
    else:
        naive = pd.Timestamp.fromisocalendar(label // 100, label % 100, 1)
    # a few zones skip midnight on DST days; the period then starts at the first real instant
    return naive.tz_localize(zone, nonexistent="shift_forward", ambiguous=True)


def _check_power(values: Any, name: str, length: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or (length is not None and len(array) != length):
        raise TariffError(
            f"{name} must be 1-D with one value per step ({length}), got {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise TariffError(
            f"{name} holds NaN or infinite values at step {np.argmin(np.isfinite(array))}"
        )
    if np.any(array < 0):
        raise TariffError(
            f"{name} must be >= 0 (a magnitude); found {array.min()} at step {np.argmin(array)}; "
            "split site power with np.clip(site_p_kw, 0, None) and np.clip(-site_p_kw, 0, None)"
        )
    return array


def demand_peaks_kw(
    import_kw: np.ndarray,
    step_s: int,
    times_utc: pd.DatetimeIndex,
    tz: str,
    period: str = "month",
    window_s: int = 900,
) -> pd.DataFrame:
    """Billing-period peak of the window-averaged grid import.

    Import [kW] is averaged over windows of ``window_s`` aligned to the local clock (quarter hours
    for 900 s). Steps shorter than the window are averaged by their start time (a window partly
    outside the data is averaged over the part inside it); steps as long as the window or longer
    count as their own average.

    Args:
        import_kw: Grid import per step [kW], >= 0.
        step_s: Step length [s]; divides ``window_s`` when shorter than it.
        times_utc: UTC start instant of each step.
        tz: Site IANA time zone (defines windows and the billing calendar).
        period: ``"month"``, ``"week"`` or ``"day"``.
        window_s: Demand averaging window [s].

    Returns:
        One row per billing period that has data, indexed by the period label (see
        :func:`billing_periods`), with ``period_start`` (local), ``peak_kw`` [kW] and ``peak_at``
        (local start of the peak window; the first one on a tie).
    """
    _check_period(period)
    local = _local_times(times_utc, tz)
    power = _check_power(import_kw, "import_kw", len(local))
    if step_s <= 0 or window_s <= 0:
        raise TariffError(f"step_s {step_s} and window_s {window_s} must be positive")
    if step_s < window_s and window_s % step_s:
        raise TariffError(
            f"step {step_s} s does not divide the demand window {window_s} s; "
            "use a step that divides it (e.g. 60 s or 300 s for 900 s)"
        )
    utc_s = local.as_unit("s").asi8
    if step_s >= window_s:
        window_start_s, average_kw = utc_s, power
    else:
        offset_s = local.tz_localize(None).as_unit("s").asi8 - utc_s
        wall_s = utc_s + offset_s
        # UTC start of the local-aligned window: distinct for the repeated hour of an autumn DST day
        key = wall_s - wall_s % window_s - offset_s
        window_start_s, inverse = np.unique(key, return_inverse=True)
        average_kw = np.bincount(inverse, weights=power) / np.bincount(inverse)
    starts = pd.to_datetime(window_start_s, unit="s", utc=True).tz_convert(local.tz)
    table = pd.DataFrame(
        {"period": _period_labels(starts, period), "peak_kw": average_kw, "peak_at": starts}
    )
    best = table.loc[table.groupby("period", sort=True)["peak_kw"].idxmax()].set_index("period")
    best.insert(0, "period_start", [_period_start(int(p), period, local.tz) for p in best.index])
    return best[["period_start", "peak_kw", "peak_at"]]


def energy_cost(
    import_kw: np.ndarray,
    export_kw: np.ndarray,
    prices: np.ndarray | float,
    export_prices: np.ndarray | float,
    step_s: float,
) -> np.ndarray:
    """Net energy cost [currency] per step: import energy x price minus export energy x price.

    Args:
        import_kw: Grid import per step [kW], >= 0.
        export_kw: Grid export per step [kW], >= 0 (a magnitude).
        prices: Import price per step or one for all [currency/kWh].
        export_prices: Export price per step or one for all [currency/kWh].
        step_s: Step length [s].
    """
    imports = _check_power(import_kw, "import_kw")
    exports = _check_power(export_kw, "export_kw", len(imports))
    hours = step_s / SECONDS_PER_HOUR
    try:
        return imports * hours * np.asarray(prices) - exports * hours * np.asarray(export_prices)
    except ValueError as exc:
        raise TariffError(f"prices do not match the {len(imports)} steps: {exc}") from exc


@dataclass(frozen=True)
class RateCharge:
    """Energy imported under one rate name [kWh] and its charge [currency]."""

    name: str
    energy_kwh: float
    charge: float


@dataclass(frozen=True)
class DemandCharge:
    """Demand charge of one billing period: peak [kW] of the window average, charge [currency]."""

    period: int
    period_start: pd.Timestamp
    peak_kw: float
    peak_at: pd.Timestamp
    charge: float


@dataclass(frozen=True)
class Bill:
    """Summary of what a site pays under a tariff.

    ``total = energy_charge + demand_charge - export_credit`` [currency].
    """

    currency: str
    energy: tuple[RateCharge, ...]
    demand: tuple[DemandCharge, ...]
    import_kwh: float
    export_kwh: float
    export_credit: float

    @property
    def energy_charge(self) -> float:
        """Sum of the import energy charges [currency]."""
        return float(sum(item.charge for item in self.energy))

    @property
    def demand_charge(self) -> float:
        """Sum of the demand charges over billing periods [currency]."""
        return float(sum(item.charge for item in self.demand))

    @property
    def total(self) -> float:
        """Amount due [currency]; negative when export credit exceeds the charges."""
        return self.energy_charge + self.demand_charge - self.export_credit

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (timestamps as ISO 8601 with offset)."""
        return {
            "currency": self.currency,
            "energy": [asdict(item) for item in self.energy],
            "demand": [
                {
                    "period": item.period,
                    "period_start": item.period_start.isoformat(),
                    "peak_kw": item.peak_kw,
                    "peak_at": item.peak_at.isoformat(),
                    "charge": item.charge,
                }
                for item in self.demand
            ],
            "import_kwh": self.import_kwh,
            "export_kwh": self.export_kwh,
            "energy_charge": self.energy_charge,
            "demand_charge": self.demand_charge,
            "export_credit": self.export_credit,
            "total": self.total,
        }


def bill(
    tariff: Tariff, site_p_kw: np.ndarray, step_s: int, times_utc: pd.DatetimeIndex, tz: str
) -> Bill:
    """Bill a site power series [kW, load convention] over its run.

    Energy is charged per rate name (every rate of the tariff appears, plus
    :data:`DEFAULT_RATE_NAME` when a default price is set; one :data:`PRICE_SERIES_RATE_NAME`
    charge under a price series); the demand charge applies to each billing period's peak in
    full, also for a period the run covers only in part.
    """
    site = np.asarray(site_p_kw, dtype=float)
    imports = np.clip(site, 0.0, None)
    exports = np.clip(-site, 0.0, None)
    local = _local_times(times_utc, tz)
    hours = step_s / SECONDS_PER_HOUR
    import_kwh = _check_power(imports, "site_p_kw", len(local)) * hours
    if tariff.price_series is not None:
        cost = import_kwh * tariff.price_series.import_prices(local)
        names = [PRICE_SERIES_RATE_NAME]
        labels = np.full(len(local), PRICE_SERIES_RATE_NAME, dtype=object)
    else:
        chosen = _rate_index(tariff, local)
        cost = import_kwh * _prices(tariff)[chosen]
        names = [rate.name for rate in tariff.energy_rates]
        if tariff.default_price_per_kwh is not None:
            names.append(DEFAULT_RATE_NAME)
        every = [rate.name for rate in tariff.energy_rates] + [DEFAULT_RATE_NAME]
        labels = np.asarray(every)[chosen]
    energy = tuple(
        RateCharge(
            name=name,
            energy_kwh=float(import_kwh[labels == name].sum()),
            charge=float(cost[labels == name].sum()),
        )
        for name in dict.fromkeys(names)
    )
    peaks = demand_peaks_kw(
        imports, step_s, local, tz, tariff.billing_period, tariff.demand_window_s
    )
    demand = tuple(
        DemandCharge(
            period=int(label),
            period_start=row.period_start,
            peak_kw=float(row.peak_kw),
            peak_at=row.peak_at,
            charge=float(row.peak_kw) * tariff.demand_charge_per_kw,
        )
        for label, row in peaks.iterrows()
    )
    export_kwh = exports * hours
    series = tariff.price_series
    if series is not None and series.export_price_per_kwh is not None:
        export_credit = float((export_kwh * tariff.export_prices(local)).sum())
    else:
        export_credit = float(export_kwh.sum()) * tariff.export_price_per_kwh
    return Bill(
        currency=tariff.currency,
        energy=energy,
        demand=demand,
        import_kwh=float(import_kwh.sum()),
        export_kwh=float(export_kwh.sum()),
        export_credit=export_credit,
    )


def tariff_from_qubit(mapping: dict[str, Any], **overrides: Any) -> Tariff:
    """Build a :class:`Tariff` from a Qubit L3 tariff dict.

    Reads ``energy_rates[*]`` with ``name``, ``rate`` and ``schedule: {start_time, end_time}``;
    ``weekdays`` and ``months`` may sit on the rate or in its schedule. Top-level keys that match
    :class:`Tariff` fields (e.g. ``currency``) are used; ``overrides`` replace them.
    """
    fields = set(Tariff.__dataclass_fields__) - {"energy_rates"}
    rates = []
    for number, entry in enumerate(mapping.get("energy_rates", ())):
        schedule = dict(entry.get("schedule") or {})
        try:
            rates.append(
                EnergyRate(
                    name=entry.get("name", f"rate_{number}"),
                    price_per_kwh=entry["rate"],
                    start=schedule.get("start_time", "00:00"),
                    end=schedule.get("end_time", "23:59"),
                    weekdays=entry.get("weekdays", schedule.get("weekdays")),
                    months=entry.get("months", schedule.get("months")),
                )
            )
        except KeyError as exc:
            raise TariffError(f"energy_rates[{number}] has no {exc.args[0]!r}") from exc
    options = {key: value for key, value in mapping.items() if key in fields}
    options.update(overrides)
    return Tariff(energy_rates=tuple(rates), **options)
