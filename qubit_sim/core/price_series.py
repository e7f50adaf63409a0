"""Dynamic energy prices: a step function of time read from a CSV (day-ahead, spot, own series).

A price holds from its row's time until the next row's; the last row holds for one median row
spacing (one hour of an hourly day-ahead file, 15 min of a quarter-hourly one). A step of the
simulation is priced at its start instant, as time-of-use rates are (:mod:`qubit_sim.core.tariff`),
so a price may change only at a step boundary: :meth:`PriceSeries.check_steps` refuses a series
that changes inside a step rather than silently sampling it. Negative prices are allowed (they
happen on spot markets); a missing or non-numeric price is an error naming its line.

The CSV (read by :mod:`qubit_sim.core.csv_input`: times with an offset as written, naive times
local to the site zone; ``,`` or ``;`` separated) has the columns ``time`` and ``price_per_kwh``
[currency/kWh] and optionally ``export_price_per_kwh`` [currency/kWh].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qubit_sim.core.csv_input import format_utc, line_list, read_csv_table
from qubit_sim.errors import QubitSimError

__all__ = ["PRICE_SERIES_RATE_NAME", "PriceSeries", "TariffError", "read_price_csv"]

PRICE_SERIES_RATE_NAME = "price series"
"""Rate name of energy priced by a :class:`PriceSeries` (bills, :func:`~.tariff.rate_names`)."""

# Median prices above this, in a currency whose kWh costs cents, are a file in currency/MWh
# (as exchanges publish day-ahead prices): no market has had a median of 5 EUR/kWh.
_MWH_SUSPECT_PER_KWH = 5.0
_CENT_CURRENCIES = frozenset({"EUR", "USD", "GBP", "CHF", "CAD", "AUD", "NZD"})


class TariffError(QubitSimError, ValueError):
    """A tariff, carbon-intensity source or billing input is invalid or does not cover a time.

    It is also a :class:`ValueError`, so configuration layers can treat it like any bad value.
    """


def _utc_seconds(times_utc: Any) -> np.ndarray:
    index = pd.DatetimeIndex(times_utc)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.as_unit("s").asi8


def _stamp(seconds: int) -> str:
    return format_utc(pd.Timestamp(int(seconds), unit="s"))


@dataclass(frozen=True, eq=False)
class PriceSeries:
    """Import (and optionally export) prices as a step function of UTC time.

    Attributes:
        start_s: Instant each price starts [s since the Unix epoch, UTC], strictly increasing.
        price_per_kwh: Import price from each instant until the next [currency/kWh]; may be < 0.
        end_s: Instant the last price ends [s since the Unix epoch, UTC], exclusive.
        export_price_per_kwh: Export price likewise [currency/kWh], or None: the tariff's
            constant ``export_price_per_kwh`` applies.
        source: Where the prices come from (a file path), named in messages.

    Raises:
        TariffError: mismatched lengths, non-finite prices, times not increasing, or an end not
            after the last start.
    """

    start_s: np.ndarray
    price_per_kwh: np.ndarray
    end_s: int
    export_price_per_kwh: np.ndarray | None = None
    source: str = "price series"

    def __post_init__(self) -> None:
        starts = np.asarray(self.start_s, dtype=np.int64)
        prices = np.asarray(self.price_per_kwh, dtype=float)
        what = f"price series {self.source}"
        if starts.ndim != 1 or len(starts) == 0 or prices.shape != starts.shape:
            raise TariffError(
                f"{what} needs one price per start time, got {prices.shape} prices for "
                f"{starts.shape} times"
            )
        if np.any(np.diff(starts) <= 0):
            raise TariffError(f"{what}: start times must increase strictly")
        end_s = int(self.end_s)
        if end_s <= starts[-1]:
            raise TariffError(f"{what}: end {_stamp(end_s)} is not after the last start")
        columns = {"price_per_kwh": prices}
        exports = None
        if self.export_price_per_kwh is not None:
            exports = np.asarray(self.export_price_per_kwh, dtype=float)
            if exports.shape != starts.shape:
                raise TariffError(f"{what}: {exports.shape} export prices for {starts.shape} times")
            columns["export_price_per_kwh"] = exports
        for name, values in columns.items():
            if not np.all(np.isfinite(values)):
                row = int(np.argmin(np.isfinite(values)))
                raise TariffError(f"{what}: {name} is {values[row]} at {_stamp(starts[row])}")
        object.__setattr__(self, "start_s", starts)
        object.__setattr__(self, "price_per_kwh", prices)
        object.__setattr__(self, "export_price_per_kwh", exports)
        object.__setattr__(self, "end_s", end_s)

    @classmethod
    def from_steps(
        cls,
        times_utc: Any,
        step_s: int,
        price_per_kwh: Any,
        export_price_per_kwh: Any = None,
        source: str = "price series",
    ) -> PriceSeries:
        """A series with one price per step of a regular run (e.g. the prices a run recorded).

        Args:
            times_utc: UTC start of every step.
            step_s: Step length [s]; the last price ends one step after the last start.
        """
        starts = _utc_seconds(times_utc)
        if len(starts) == 0:
            raise TariffError(f"price series {source} has no steps")
        return cls(starts, price_per_kwh, int(starts[-1]) + int(step_s), export_price_per_kwh,
                   source)  # fmt: skip

    def _rows(self, times_utc: Any) -> np.ndarray:
        """Row in force at each instant; raises unless the series covers every instant."""
        return self._rows_s(_utc_seconds(times_utc))

    def _rows_s(self, wanted: np.ndarray) -> np.ndarray:
        if len(wanted) == 0:
            return np.zeros(0, dtype=np.int64)
        if wanted.min() < self.start_s[0] or wanted.max() >= self.end_s:
            raise TariffError(
                f"price series {self.source} covers {_stamp(self.start_s[0])} .. "
                f"{_stamp(self.end_s)} (the last price held one spacing past its row) but the "
                f"scenario needs {_stamp(wanted.min())} .. {_stamp(wanted.max())}; extend the "
                "file to the whole run or shorten the scenario"
            )
        return np.searchsorted(self.start_s, wanted, side="right") - 1

    def import_prices(self, times_utc: Any) -> np.ndarray:
        """Import price [currency/kWh] in force at each UTC instant.

        Raises:
            TariffError: an instant the series does not cover (the range needed is named).
        """
        return self.price_per_kwh[self._rows(times_utc)]

    def export_prices(self, times_utc: Any) -> np.ndarray | None:
        """Export price [currency/kWh] at each UTC instant; None when the series has none."""
        if self.export_price_per_kwh is None:
            return None
        return self.export_price_per_kwh[self._rows(times_utc)]

    def check_steps(self, times_utc: Any, step_s: int) -> None:
        """Refuse a series whose price changes inside a step of the run (starting at ``times_utc``).

        Raises:
            TariffError: naming the first such change and a step that divides the spacing.
        """
        wanted = _utc_seconds(times_utc)
        if len(wanted) == 0:
            return
        self._rows_s(wanted)
        inside = (self.start_s > wanted[0]) & (self.start_s < wanted[-1] + step_s)
        since_start = self.start_s[inside] - wanted[0]
        offset = since_start % step_s
        if np.any(offset):
            first = int(self.start_s[inside][np.flatnonzero(offset)[0]])
            # the longest step that puts every price change of the run on a step boundary
            divisor = int(np.gcd.reduce(np.append(since_start, step_s)))
            hint = f" (e.g. {divisor} s)"
            raise TariffError(
                f"price series {self.source} changes price at {_stamp(first)}, inside a "
                f"simulation step of {step_s} s (steps start at {_stamp(wanted[0])}): a step is "
                f"priced at its start, so use a step that divides the price intervals{hint} or "
                "a start on a price boundary"
            )


def read_price_csv(path: str | Path, tz: str | None, currency: str | None = None) -> PriceSeries:
    """Read a price CSV (columns in the module doc) into a :class:`PriceSeries`.

    Args:
        path: The file.
        tz: Zone of times written without an offset (the site's ``location.tz``).
        currency: The tariff's ISO 4217 code; for EUR, USD, GBP, CHF, CAD, AUD and NZD a median
            price above 5 per kWh is refused as a file in currency/MWh.

    Raises:
        TariffError: unreadable file, missing columns, bad times or prices (with their lines),
            times not strictly increasing, fewer than two rows, or prices in currency/MWh.
    """
    source = Path(path)
    if not source.is_file():
        raise TariffError(f"price CSV {source} does not exist")
    try:
        table = read_csv_table(source, "price CSV")
        units = {"time": "", "price_per_kwh": "currency/kWh"}
        table.require(units, {"export_price_per_kwh": "currency/kWh"})
        times = table.times("time", tz)
    except TariffError:
        raise
    except QubitSimError as exc:
        raise TariffError(str(exc)) from exc
    if len(times) < 2:
        raise TariffError(
            f"price CSV {source} has one row; it needs at least two (a price holds until the next "
            "row, and the spacing of the rows says how long the last one holds)"
        )
    columns: dict[str, np.ndarray] = {}
    for name in ("price_per_kwh", "export_price_per_kwh"):
        if not table.has(name):
            continue
        values = table.numbers(name)
        if not np.all(np.isfinite(values)):
            raise TariffError(str(table.error(table.number_problem(name, ~np.isfinite(values)))))
        columns[name] = values
    seconds = times.as_unit("s").asi8
    steps = np.diff(seconds)
    if np.any(steps <= 0):
        bad = np.concatenate([[False], steps <= 0])
        raise TariffError(
            f"price CSV {source}: times must increase strictly; see {line_list(bad, table.lines)}"
        )
    if currency in _CENT_CURRENCIES:
        for name, values in columns.items():
            median = float(np.median(np.abs(values)))
            if median > _MWH_SUSPECT_PER_KWH:
                raise TariffError(
                    f"price CSV {source}: {name} has a median of {median:g} {currency}/kWh; is "
                    f"the column in {currency}/MWh, as exchanges publish day-ahead prices? "
                    f"{name} must be in {currency}/kWh (divide by 1000)"
                )
    return PriceSeries(
        start_s=seconds,
        price_per_kwh=columns["price_per_kwh"],
        end_s=int(seconds[-1] + np.median(steps)),
        export_price_per_kwh=columns.get("export_price_per_kwh"),
        source=str(source),
    )
