"""The site's bill per billing period, as a table of line items.

The bill is computed from the site meter: the import and export columns of the run
(``grid_import_kw``, ``grid_export_kw``, [kW] >= 0), priced with the scenario's tariff
(:mod:`qubit_sim.core.tariff`: time-of-use windows in site-local time with an inclusive end
minute, weekday and month filters, a step priced at its start instant). Per billing period
(local calendar month, ISO week or day) the lines are:

============== ================================= ====== ==================================
``line``       quantity                          unit   amount [currency]
============== ================================= ====== ==================================
``energy``     import under one rate and price   kWh    quantity x unit_price
``demand``     peak of the window-averaged import kW     quantity x demand charge per kW
``export``     exported energy                   kWh    -(quantity x export price), a credit
``total``      (none)                                   sum of the period's lines
============== ================================= ====== ==================================

Under a tariff priced by a price series (``tariff.price_csv``) a period has one energy line,
rate ``price series``: quantity the imported kWh, amount the sum over its steps of import x price
x step length, unit_price = amount / quantity (the import-weighted mean price; NaN without
import). When the series has export prices the export line is made likewise (its unit_price is
the export-weighted mean export price).

Every line also says how much of its period the run covered: ``period_end`` (local, exclusive),
``period_s`` (the period's length [s]; 23 h or 25 h on a DST day), ``covered_s`` (the part of it
between ``data_start`` and ``data_end``, UTC [s]) and ``partial`` (``covered_s < period_s``). A
partial period is billed as a whole one: its demand line carries the full demand charge on the
peak so far, as the KPIs' ``demand_charge`` does, so a one-day run on a monthly tariff pays a
month's demand charge; :func:`partial_note` says so. Amounts are not rounded here: rounding is
the presentation's business, so that sums of lines stay exact.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from qubit_sim.core.price_series import PRICE_SERIES_RATE_NAME
from qubit_sim.core.tariff import (
    BILLING_PERIODS,
    DEFAULT_RATE_NAME,
    EnergyRate,
    Tariff,
    billing_periods,
    demand_peaks_kw,
    energy_price_series,
    rate_names,
)
from qubit_sim.stack.settle.errors import SettlementError

__all__ = [
    "BILL_COLUMNS",
    "PARTIAL_MARK",
    "bill_lines",
    "bill_totals",
    "coverage_text",
    "partial_note",
    "period_coverage",
    "period_label",
    "period_labels",
    "tariff_for_period",
    "tariff_from_spec",
]

BILL_COLUMNS = (
    "period",
    "period_start",
    "data_start",
    "data_end",
    "period_end",
    "period_s",
    "covered_s",
    "partial",
    "line",
    "rate",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "currency",
    "note",
)
_ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"
#: Appended to the label of a partial period in printed bill tables; :func:`partial_note` explains.
PARTIAL_MARK = "*"
_COVERAGE_COLUMNS = ["period_start", "period_end", "period_s", "covered_s", "partial"]


def _check_period(period: str) -> None:
    if period not in BILLING_PERIODS:
        raise SettlementError(
            f"settlement period {period!r} is not one of {', '.join(BILLING_PERIODS)}"
        )


def _label_text(label: int, period: str) -> str:
    if period == "month":
        return f"{label // 100:04d}-{label % 100:02d}"
    if period == "week":
        return f"{label // 100:04d}-W{label % 100:02d}"
    return f"{label // 10000:04d}-{label // 100 % 100:02d}-{label % 100:02d}"


def _next_start(label: int, period: str, zone: Any) -> pd.Timestamp:
    """Local start of the period after ``label``: the exclusive end of ``label``'s period."""
    if period == "month":
        year, month = divmod(label // 100 * 12 + label % 100, 12)
        naive = pd.Timestamp(year=year, month=month + 1, day=1)
    elif period == "day":
        day = pd.Timestamp(year=label // 10000, month=label // 100 % 100, day=label % 100)
        naive = day + pd.Timedelta(days=1)
    else:
        naive = pd.Timestamp.fromisocalendar(label // 100, label % 100, 1) + pd.Timedelta(days=7)
    # as core.tariff places period starts: a skipped local midnight moves to the first real instant
    return naive.tz_localize(zone, nonexistent="shift_forward", ambiguous=True)


def period_labels(times_utc: pd.DatetimeIndex, tz: str, period: str) -> np.ndarray:
    """Billing-period label of each instant in the site's local calendar.

    Labels sort in time order: ``YYYY-MM`` (month), ``YYYY-Www`` (ISO week), ``YYYY-MM-DD`` (day).
    """
    _check_period(period)
    numbers = billing_periods(times_utc, tz, period)
    texts = {int(n): _label_text(int(n), period) for n in np.unique(numbers)}
    return np.asarray([texts[int(n)] for n in numbers], dtype=object)


def period_label(moment: datetime, tz: str, period: str) -> str:
    """Billing-period label (see :func:`period_labels`) of one timezone-aware instant."""
    return str(period_labels(pd.DatetimeIndex([moment]), tz, period)[0])


def tariff_from_spec(spec: Any, period: str | None = None) -> Tariff:
    """The :class:`~qubit_sim.core.tariff.Tariff` of a scenario's ``tariff`` section.

    Args:
        spec: A :class:`~qubit_sim.scenario.schema.TariffSpec`.
        period: Billing period overriding the scenario's ``billing_period``.

    Raises:
        SettlementError: a tariff priced by a ``price_csv``, whose prices this function cannot
            read (the path is relative to the scenario): use the ``tariff`` of the built site.
    """
    if getattr(spec, "price_csv", None) is not None:
        raise SettlementError(
            f"tariff_from_spec cannot price a tariff with price_csv {spec.price_csv!r}: build the "
            "site (qubit_sim.scenario.build.build_site) and use its tariff"
        )
    rates = tuple(
        EnergyRate(
            name=rate.name,
            price_per_kwh=rate.rate,
            start=rate.start_time,
            end=rate.end_time,
            weekdays=tuple(rate.weekdays) if rate.weekdays is not None else None,
            months=tuple(rate.months) if rate.months is not None else None,
        )
        for rate in spec.energy_rates
    )
    chosen = period or spec.billing_period
    _check_period(chosen)
    return Tariff(
        currency=spec.currency,
        energy_rates=rates,
        default_price_per_kwh=spec.default_rate,
        export_price_per_kwh=spec.export_price_per_kwh,
        demand_charge_per_kw=spec.demand_charge_per_kw,
        billing_period=chosen,
    )


def tariff_for_period(tariff: Tariff, period: str | None) -> Tariff:
    """``tariff`` billed per ``period`` (``"month"``, ``"week"`` or ``"day"``); None keeps it.

    Raises:
        SettlementError: an unknown period.
    """
    if period is None:
        return tariff
    _check_period(period)
    return replace(tariff, billing_period=period)


def _rate_order(tariff: Tariff) -> dict[tuple[str, float], int]:
    order: dict[tuple[str, float], int] = {}
    for rate in tariff.energy_rates:
        order.setdefault((rate.name, rate.price_per_kwh), len(order))
    if tariff.default_price_per_kwh is not None:
        order.setdefault((DEFAULT_RATE_NAME, tariff.default_price_per_kwh), len(order))
    return order


def bill_lines(
    times_utc: pd.DatetimeIndex,
    step_s: int,
    import_kw: np.ndarray,
    export_kw: np.ndarray,
    tariff: Tariff,
    tz: str,
) -> pd.DataFrame:
    """Line items of the site bill, per billing period of ``tariff`` (table in the module doc).

    Args:
        times_utc: UTC start of every step.
        step_s: Step length [s].
        import_kw: Site meter import per step [kW] >= 0.
        export_kw: Site meter export per step [kW] >= 0.
        tariff: The tariff; its ``billing_period`` sets the periods.
        tz: Site IANA time zone.

    Returns:
        A frame with the columns :data:`BILL_COLUMNS`, periods in time order; empty without steps.

    Raises:
        TariffError: for a step that does not divide the demand window, or an instant no rate
            covers while the tariff has no default price.
    """
    if not len(times_utc):
        return pd.DataFrame({name: [] for name in BILL_COLUMNS})
    times_utc = pd.DatetimeIndex(times_utc)
    if times_utc.tz is None:  # naive instants are UTC, as core.tariff reads them
        times_utc = times_utc.tz_localize("UTC")
    period = tariff.billing_period
    hours = step_s / 3600.0
    imports = np.asarray(import_kw, dtype=float)
    exports = np.asarray(export_kw, dtype=float)
    numbers = billing_periods(times_utc, tz, period)
    names = rate_names(tariff, times_utc, tz)
    prices = energy_price_series(tariff, times_utc, tz)
    series = tariff.price_series
    export_prices = (
        tariff.export_prices(times_utc)
        if series is not None and series.export_price_per_kwh is not None
        else None
    )
    peaks = demand_peaks_kw(imports, step_s, times_utc, tz, period, tariff.demand_window_s)
    order = _rate_order(tariff)
    window_min = tariff.demand_window_s / 60
    rows: list[dict[str, Any]] = []
    for number in np.unique(numbers):
        mask = numbers == number
        steps = times_utc[mask]
        start = peaks.loc[number, "period_start"]
        end = _next_start(int(number), period, start.tz)
        data_end = steps[-1] + pd.Timedelta(seconds=step_s)
        period_s = int((end - start).total_seconds())
        covered_s = int((min(data_end, end) - max(steps[0], start)).total_seconds())
        common = {
            "period": _label_text(int(number), period),
            "period_start": start.isoformat(),
            "data_start": steps[0].strftime(_ISO_UTC),
            "data_end": data_end.strftime(_ISO_UTC),
            "period_end": end.isoformat(),
            "period_s": period_s,
            "covered_s": covered_s,
            "partial": covered_s < period_s,
            "currency": tariff.currency,
        }
        lines = []
        if series is not None:
            lines.append(_series_line("energy", imports[mask] * hours, prices[mask], 1.0))
        else:
            energy = pd.DataFrame(
                {"rate": names[mask], "price": prices[mask], "kwh": imports[mask] * hours}
            )
            grouped = energy.groupby(["rate", "price"], sort=False)["kwh"].sum()
            for (rate, price), kwh in sorted(
                grouped.items(), key=lambda item: order.get(item[0], len(order))
            ):
                lines.append(("energy", rate, kwh, "kWh", price, kwh * price, ""))
        peak_kw = float(peaks.loc[number, "peak_kw"])
        peak_at = peaks.loc[number, "peak_at"].isoformat()
        note = f"highest {window_min:g}-min average import, window from {peak_at}"
        charge = tariff.demand_charge_per_kw
        lines.append(("demand", "", peak_kw, "kW", charge, peak_kw * charge, note))
        if export_prices is not None:
            lines.append(_series_line("export", exports[mask] * hours, export_prices[mask], -1.0))
        else:
            export_kwh = float(exports[mask].sum() * hours)
            credit = tariff.export_price_per_kwh
            # + 0.0 turns a zero credit's -0.0 into 0.0 on the bill
            lines.append(("export", "", export_kwh, "kWh", credit, -export_kwh * credit + 0.0, ""))
        total = float(sum(line[5] for line in lines))
        lines.append(("total", "", np.nan, "", np.nan, total, ""))
        for line, rate, quantity, unit, unit_price, amount, note in lines:
            rows.append(
                {
                    **common,
                    "line": line,
                    "rate": str(rate),
                    "quantity": float(quantity),
                    "unit": unit,
                    "unit_price": float(unit_price),
                    "amount": float(amount),
                    "note": note,
                }
            )
    return pd.DataFrame(rows, columns=list(BILL_COLUMNS))


def _series_line(line: str, kwh: np.ndarray, price: np.ndarray, sign: float) -> tuple:
    """A line priced step by step: amount = sign x sum(kWh x price), unit_price = the mean."""
    quantity = float(kwh.sum())
    value = float((kwh * price).sum())
    unit_price = value / quantity if quantity > 0 else np.nan
    note = "unit_price: mean of the price series weighted by the energy of each step"
    # + 0.0 turns a zero credit's -0.0 into 0.0 on the bill
    return (line, PRICE_SERIES_RATE_NAME, quantity, "kWh", unit_price, sign * value + 0.0, note)


def bill_totals(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per period of a :func:`bill_lines` table: import and export [kWh], peak [kW] and
    the energy, demand, export-credit and total amounts [currency] (credit as a positive number).
    """
    columns = ["import_kwh", "export_kwh", "peak_kw", "energy", "demand", "export_credit", "total"]
    if lines.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="period"))
    rows = {}
    for period, group in lines.groupby("period", sort=True):
        quantity = group.groupby("line")["quantity"].sum()
        amount = group.groupby("line")["amount"].sum()
        rows[period] = {
            "import_kwh": float(quantity.get("energy", 0.0)),
            "export_kwh": float(quantity.get("export", 0.0)),
            "peak_kw": float(quantity.get("demand", 0.0)),
            "energy": float(amount.get("energy", 0.0)),
            "demand": float(amount.get("demand", 0.0)),
            "export_credit": float(-amount.get("export", 0.0)),
            "total": float(amount.get("total", 0.0)),
        }
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("period")


def period_coverage(lines: pd.DataFrame) -> pd.DataFrame:
    """How much of each billing period of a :func:`bill_lines` table the run covered.

    Returns:
        One row per period (index ``period``, time order) with ``period_start`` and
        ``period_end`` (local ISO), ``period_s`` and ``covered_s`` [s] and ``partial``.
    """
    if lines.empty:
        return pd.DataFrame(columns=_COVERAGE_COLUMNS, index=pd.Index([], name="period"))
    first = lines.groupby("period", sort=True)[_COVERAGE_COLUMNS].first()
    return first.astype({"period_s": "int64", "covered_s": "int64", "partial": "bool"})


def _amount_text(value: float) -> str:
    # whole numbers without decimals ("1 of 30 d"), otherwise two at most ("6.92 of 7 d")
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def coverage_text(period_start: str, period_end: str, period_s: int, covered_s: int) -> str:
    """The part of a billing period a run covered, as a person reads it.

    Days of the local calendar (``1 of 30 d``, ``6.92 of 7 d``) for months and weeks, hours for
    days (``22 of 24 h``; a DST day has 23 or 25). A week or month with a DST change counts its
    calendar days; the covered share of it is ``covered_s / period_s``.
    """
    start = datetime.fromisoformat(period_start).date()
    end = datetime.fromisoformat(period_end).date()
    days = (end - start).days
    if days == 1:
        return f"{_amount_text(covered_s / 3600)} of {_amount_text(period_s / 3600)} h"
    return f"{_amount_text(days * covered_s / period_s)} of {days} d"


def partial_note(lines: pd.DataFrame) -> str | None:
    """The footnote of a bill whose table marks partial periods with :data:`PARTIAL_MARK`.

    Names each period the run covers only in part, with its coverage, and says that its demand
    charge is billed in full; None when every period is covered whole.
    """
    coverage = period_coverage(lines)
    partial = coverage[coverage["partial"]]
    if partial.empty:
        return None
    named = ", ".join(
        f"{period} ({coverage_text(row.period_start, row.period_end, row.period_s, row.covered_s)})"
        for period, row in partial.iterrows()
    )
    return (
        f"{PARTIAL_MARK} partly covered by the run: {named}. The demand charge of a partial "
        "period is billed in full (as the KPIs bill it), so a short run carries a whole "
        "period's demand charge."
    )
