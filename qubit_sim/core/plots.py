"""PNG plots of a run's results time series.

:func:`write_plots` draws whichever of these figures the columns allow and skips the rest:

=============== ================================================================================
file            needs (any of)
=============== ================================================================================
site_power.png  ``site_p_kw``, ``load_kw``, ``pv_kw``, ``ev_p_kw``, ``battery_p_kw`` (also draws
                ``price_per_kwh``)
battery_soc.png ``battery_soc``
chargers.png    ``charger_<id>_connected``, ``charger_<id>_p_kw``, ``ev_connected``
voltage.png     ``grid_vm_min_pu``, ``grid_vm_max_pu``, ``grid_vm_site_pu`` (also draws
                ``grid_line_loading_max_pct`` and ``grid_trafo_loading_max_pct``)
=============== ================================================================================

A column without a single finite value counts as missing (no empty chart for a site without a
battery). A long run is drawn from time buckets of a round size (5 min .. 2 h, then whole days, see
:func:`bucket_seconds`) so a figure holds at most ``max_points`` points: powers are averaged, so
areas keep their energy; columns named ``*_min_*`` keep the bucket minimum and ``*_max_*`` the
maximum, so envelopes keep their extremes; the net site power gets a min/max band, so short peaks
stay visible. Sizes between 2 h and a day are skipped because they beat against the daily cycle.

matplotlib is imported on first use and drawn on its Agg canvas without pyplot, so the caller's
backend and pyplot's global figure list are left alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from qubit_sim.core.clock import format_duration
from qubit_sim.errors import QubitSimError

__all__ = ["PlotError", "bucket_seconds", "downsample", "write_plots"]

_BUCKETS_S = (60, 300, 900, 1800, 3600, 7200, 86400, 7 * 86400)
_CHARGER = re.compile(r"^charger_(.+)_(connected|p_kw)$")
_STYLE: dict[Any, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "savefig.facecolor": "white",
}
_COLOR = {
    "load": "#8c8c8c",
    "ev": "#1f77b4",
    "battery_charge": "#2ca02c",
    "pv": "#f2b701",
    "battery_discharge": "#98df8a",
    "v2g": "#aec7e8",
    "limit": "#d62728",
}


class PlotError(QubitSimError):
    """The results table cannot be plotted (no time axis, unknown time zone, bad option)."""


def bucket_seconds(span_s: float, step_s: int, max_points: int) -> int:
    """Bucket size [s] for drawing ``span_s`` of ``step_s`` data with at most ``max_points``.

    Returns ``step_s`` when the data fits; otherwise the smallest large enough of 1 min, 5 min,
    15 min, 30 min, 1 h, 2 h, 1 day, 1 week or whole weeks, or, when the step does not divide that
    size, the smallest large enough multiple of the step.
    """
    if max_points < 1 or step_s <= 0:
        raise PlotError(f"max_points ({max_points}) and step_s ({step_s}) must be positive")
    need = span_s / max_points
    if need <= step_s:
        return int(step_s)
    size = next((size for size in _BUCKETS_S if size >= need), None)
    if size is None:
        size = math.ceil(need / _BUCKETS_S[-1]) * _BUCKETS_S[-1]
    # a step that does not divide the round size gets buckets of whole steps instead
    return size if size % step_s == 0 else int(math.ceil(need / step_s) * step_s)


def downsample(
    df: pd.DataFrame, bucket_s: int, *, align_offset_s: int = 0, envelope: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Aggregate ``df`` (with a ``time`` column) into consecutive time buckets of ``bucket_s``.

    Buckets start where ``UTC + align_offset_s`` is a multiple of ``bucket_s`` (pass the site's
    UTC offset [s] to align days to local midnight); ``time`` becomes each bucket's start. Numeric
    columns are averaged, except names containing ``_min_`` (bucket minimum) or ``_max_``
    (maximum); each column in ``envelope`` also gets ``<col>_lo`` / ``<col>_hi`` (bucket min/max).
    NaN is ignored within a bucket; a bucket of only NaN stays NaN.
    """
    if bucket_s <= 0:
        raise PlotError(f"bucket_s must be positive, got {bucket_s}")
    times = pd.DatetimeIndex(pd.to_datetime(df["time"], utc=True))
    order = np.argsort(times.asi8, kind="stable")
    key = (times.as_unit("s").asi8[order] + align_offset_s) // bucket_s
    starts = np.flatnonzero(np.r_[True, np.diff(key) != 0])
    columns: dict[str, Any] = {
        "time": pd.to_datetime(key[starts] * bucket_s - align_offset_s, unit="s", utc=True)
    }
    numeric = [c for c in df.columns if c != "time" and pd.api.types.is_numeric_dtype(df[c])]
    for column in numeric:
        values = df[column].to_numpy(dtype=float)[order]
        if "_min_" in column:
            columns[column] = np.fmin.reduceat(values, starts)
        elif "_max_" in column:
            columns[column] = np.fmax.reduceat(values, starts)
        else:
            finite = np.isfinite(values)
            total = np.add.reduceat(np.where(finite, values, 0.0), starts)
            count = np.add.reduceat(finite.astype(float), starts)
            columns[column] = np.divide(
                total, count, out=np.full(len(starts), np.nan), where=count > 0
            )
        if column in envelope:
            columns[f"{column}_lo"] = np.fmin.reduceat(values, starts)
            columns[f"{column}_hi"] = np.fmax.reduceat(values, starts)
    return pd.DataFrame(columns)


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _charger_ids(columns: Any, kind: str) -> list[str]:
    found = [m.group(1) for c in columns if (m := _CHARGER.match(str(c))) and m.group(2) == kind]
    return sorted(found, key=_natural_key)


_USED = (
    "site_p_kw",
    "load_kw",
    "pv_kw",
    "ev_p_kw",
    "battery_p_kw",
    "battery_soc",
    "ev_connected",
    "grid_vm_min_pu",
    "grid_vm_max_pu",
    "grid_vm_site_pu",
    "grid_line_loading_max_pct",
    "grid_trafo_loading_max_pct",
    "price_per_kwh",
)


def _plot_table(df: pd.DataFrame) -> pd.DataFrame:
    """The columns the plots draw, plus split powers computed per step (before any averaging)."""
    columns: dict[str, Any] = {"time": pd.to_datetime(df["time"], utc=True)}
    for name in _USED:
        if name in df:
            columns[name] = df[name].to_numpy(dtype=float)
    for name, column in (("battery", "battery_p_kw"), ("ev", "ev_p_kw")):
        if column in columns:
            columns[f"{name}_charge_kw"] = np.clip(columns[column], 0.0, None)
            columns[f"{name}_discharge_kw"] = np.clip(columns[column], None, 0.0)
    for charger in _charger_ids(df.columns, "connected"):
        columns[f"charger_{charger}_connected"] = df[f"charger_{charger}_connected"].to_numpy(float)
    power_ids = _charger_ids(df.columns, "p_kw")
    if power_ids:
        total = np.zeros(len(df))
        for charger in power_ids:
            total += df[f"charger_{charger}_p_kw"].to_numpy(dtype=float)
        columns["chargers_total_kw"] = total
    return pd.DataFrame(columns, index=df.index)


class _TimeAxis:
    """Shared x axis in matplotlib date numbers, labelled in one zone (DST-correct)."""

    def __init__(
        self,
        x: pd.DatetimeIndex,
        span: tuple[pd.Timestamp, pd.Timestamp],
        zone: ZoneInfo,
        label: str,
        bucketed: bool,
    ) -> None:
        import matplotlib.dates as mdates

        self.x = mdates.date2num(x.tz_convert("UTC").tz_localize(None).to_numpy())
        self.left, self.right = (
            float(mdates.date2num(t.tz_convert("UTC").tz_localize(None).to_datetime64()))
            for t in span
        )
        self.zone, self.label = zone, label
        # bucket means sit at bucket centres; unbucketed values hold from their step start
        self.steps = "default" if bucketed else "steps-post"

    def apply(self, axes: list[Any]) -> None:
        import matplotlib.dates as mdates

        for ax in axes:
            locator = mdates.AutoDateLocator(tz=self.zone, minticks=4, maxticks=10)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=self.zone))
            ax.set_xlim(self.left, self.right)
        axes[-1].set_xlabel(self.label)


def write_plots(
    df: pd.DataFrame,
    out_dir: Path,
    title: str,
    *,
    tz: str | None = None,
    import_limit_kw: float | None = None,
    export_limit_kw: float | None = None,
    voltage_limits_pu: tuple[float, float] = (0.95, 1.05),
    loading_limit_pct: float = 100.0,
    currency: str = "EUR",
    max_points: int = 2000,
    dpi: int = 110,
) -> list[Path]:
    """Write the result plots of a run as PNG files into ``out_dir``.

    Args:
        df: Results time series: ``time`` (UTC step starts, a column or the index) and the columns
            listed in the module docstring; a plot whose columns are all missing is skipped.
        out_dir: Folder for the PNGs; created if missing.
        title: Run title shown on every figure.
        tz: IANA zone the time axis is labelled in; None labels it in UTC.
        import_limit_kw: Grid-connection import limit [kW], drawn on the site power plot.
        export_limit_kw: Grid-connection export limit [kW] (a magnitude), drawn below zero.
        voltage_limits_pu: Lower and upper voltage limits [p.u.], drawn on the voltage plot.
        loading_limit_pct: Loading limit of lines and transformers [%] (what ``overload_steps``
            counts against), drawn on the loading panel.
        currency: Currency of ``price_per_kwh`` for its axis label.
        max_points: Most points per series; longer runs are drawn from time buckets.
        dpi: Resolution of the PNGs [dots per inch].

    Returns:
        Paths written, in the order site_power, battery_soc, chargers, voltage.

    Raises:
        PlotError: no ``time`` column or DatetimeIndex, an empty table, or an unknown ``tz``.
    """
    import matplotlib as mpl

    if "time" not in df.columns:
        if not isinstance(df.index, pd.DatetimeIndex):
            raise PlotError("results have no 'time' column or DatetimeIndex to plot against")
        df = df.rename_axis("time").reset_index()
    if df.empty:
        raise PlotError("results table is empty; nothing to plot")
    zone_name = tz or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PlotError(
            f"unknown time zone {tz!r}; use an IANA name such as 'Europe/Amsterdam'"
        ) from exc
    times = pd.DatetimeIndex(pd.to_datetime(df["time"], utc=True)).sort_values()
    step_s = int(np.median(np.diff(times.as_unit("s").asi8))) if len(times) > 1 else 60
    span_s = (times[-1] - times[0]).total_seconds() + step_s
    bucket_s = bucket_seconds(span_s, max(step_s, 1), max_points)
    table = _plot_table(df)
    label = f"time ({zone_name})"
    if bucket_s > step_s:
        offset_s = int(times[0].tz_convert(zone).utcoffset().total_seconds())
        table = downsample(table, bucket_s, align_offset_s=offset_s, envelope=("site_p_kw",))
        x = pd.DatetimeIndex(table["time"]) + pd.Timedelta(seconds=bucket_s / 2)
        left, right = table["time"].iloc[0], table["time"].iloc[-1] + pd.Timedelta(seconds=bucket_s)
        label += f"; {format_duration(bucket_s)} buckets: means, envelopes min–max"
    else:
        table = table.sort_values("time", kind="stable")
        x = pd.DatetimeIndex(table["time"])
        left, right = x[0], x[-1] + pd.Timedelta(seconds=step_s)
    axis = _TimeAxis(x, (left, right), zone, label, bucketed=bucket_s > step_s)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawers: tuple[tuple[str, Callable[[], Any]], ...] = (
        (
            "site_power.png",
            lambda: _site_power(
                table, axis, title, import_limit_kw, export_limit_kw, currency, bucket_s > step_s
            ),
        ),
        ("battery_soc.png", lambda: _battery(table, axis, title)),
        ("chargers.png", lambda: _chargers(table, axis, title)),
        ("voltage.png", lambda: _voltage(table, axis, title, voltage_limits_pu, loading_limit_pct)),
    )
    written: list[Path] = []
    with mpl.rc_context(_STYLE):
        for name, draw in drawers:
            figure = draw()
            if figure is not None:
                figure.savefig(out_dir / name, dpi=dpi)
                written.append(out_dir / name)
    return written


def _figure(title: str, what: str, ratios: list[int]) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 3.0 + 1.2 * sum(ratios) / max(ratios)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(ratios), 1, sharex=True, squeeze=False, height_ratios=ratios)
    figure.suptitle(f"{title} — {what}", fontweight="bold")
    return figure, list(axes[:, 0])


def _legend(ax: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _col(table: pd.DataFrame, name: str) -> np.ndarray | None:
    """Column ``name`` as floats; ``None`` when it is absent or holds no value at all (a site
    without a battery records its ``battery_soc`` as NaN)."""
    if name not in table:
        return None
    values = table[name].to_numpy(dtype=float)
    return values if np.isfinite(values).any() else None


def _site_power(
    table: pd.DataFrame,
    axis: _TimeAxis,
    title: str,
    import_limit_kw: float | None,
    export_limit_kw: float | None,
    currency: str,
    bucketed: bool,
) -> Any:
    if not any(c in table for c in ("site_p_kw", "load_kw", "pv_kw", "ev_p_kw", "battery_p_kw")):
        return None
    price = _col(table, "price_per_kwh")
    figure, axes = _figure(title, "site power", [3, 1] if price is not None else [1])
    ax, x = axes[0], axis.x
    above = (
        ("load", "load_kw", "load"),
        ("EV charging", "ev_charge_kw", "ev"),
        ("battery charging", "battery_charge_kw", "battery_charge"),
    )
    below = (
        ("PV", "pv_kw", "pv"),
        ("battery discharging", "battery_discharge_kw", "battery_discharge"),
        ("EV discharging", "ev_discharge_kw", "v2g"),
    )
    for parts, sign in ((above, 1.0), (below, -1.0)):
        shown = []
        for label, column, color in parts:
            values = _col(table, column)
            if values is None:
                continue
            # the stack of one side holds only that side's part of each series
            part = np.clip(sign * np.nan_to_num(values), 0.0, None)
            if part.any():
                shown.append((label, sign * part, _COLOR[color]))
        if shown:
            ax.stackplot(
                x,
                *[s[1] for s in shown],
                labels=[s[0] for s in shown],
                colors=[s[2] for s in shown],
                alpha=0.75,
                linewidth=0,
            )
    if "site_p_kw" in table:
        if bucketed:
            ax.fill_between(
                x,
                table["site_p_kw_lo"],
                table["site_p_kw_hi"],
                color="black",
                alpha=0.15,
                zorder=0.5,
                linewidth=0,
                label="net site power, min–max",
            )
        ax.plot(x, table["site_p_kw"], color="black", linewidth=1.0, label="net site power")
    if import_limit_kw is not None:
        ax.axhline(
            import_limit_kw,
            color=_COLOR["limit"],
            linestyle="--",
            linewidth=1.2,
            label=f"import limit {import_limit_kw:g} kW",
        )
    if export_limit_kw is not None:
        ax.axhline(
            -abs(export_limit_kw),
            color="#9467bd",
            linestyle="--",
            linewidth=1.2,
            label=f"export limit {abs(export_limit_kw):g} kW",
        )
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel("power at site bus [kW]\n(+ import / − export)")
    _legend(ax)
    if price is not None:
        axes[1].plot(
            x, price, color="#ff7f0e", drawstyle=axis.steps, linewidth=1.0, label="import price"
        )
        axes[1].set_ylabel(f"price [{currency}/kWh]")
        _legend(axes[1])
    axis.apply(axes)
    return figure


def _battery(table: pd.DataFrame, axis: _TimeAxis, title: str) -> Any:
    soc = _col(table, "battery_soc")
    if soc is None:
        return None
    power = _col(table, "battery_p_kw")
    figure, axes = _figure(title, "battery", [2, 1] if power is not None else [1])
    x = axis.x
    axes[0].plot(x, soc * 100.0, color="#2ca02c", linewidth=1.2, label="state of charge")
    axes[0].set_ylim(-2, 102)
    axes[0].set_ylabel("state of charge [%]")
    _legend(axes[0])
    if power is not None:
        ax = axes[1]
        ax.fill_between(
            x,
            np.clip(power, 0, None),
            0,
            color=_COLOR["battery_charge"],
            alpha=0.7,
            linewidth=0,
            label="charging",
        )
        ax.fill_between(
            x,
            np.clip(power, None, 0),
            0,
            color=_COLOR["limit"],
            alpha=0.5,
            linewidth=0,
            label="discharging",
        )
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_ylabel("battery power [kW]")
        _legend(ax)
    axis.apply(axes)
    return figure


def _chargers(table: pd.DataFrame, axis: _TimeAxis, title: str) -> Any:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ids = _charger_ids(table.columns, "connected")
    total = _col(table, "chargers_total_kw")
    count = _col(table, "ev_connected")
    if not ids and total is None and count is None:
        return None
    if total is None:
        total = _col(table, "ev_p_kw")
    figure, axes = _figure(title, "chargers", [min(4, 2 + len(ids) // 10), 2] if ids else [1])
    x = axis.x
    if ids:
        ax = axes[0]
        occupancy = np.vstack([table[f"charger_{i}_connected"].to_numpy(dtype=float) for i in ids])
        image = ax.imshow(
            occupancy,
            aspect="auto",
            interpolation="nearest",
            cmap="Blues",
            vmin=0.0,
            vmax=1.0,
            extent=(axis.left, axis.right, len(ids) - 0.5, -0.5),
        )
        ax.grid(False)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=min(len(ids), 20), integer=True))
        ax.yaxis.set_major_formatter(
            FuncFormatter(lambda value, _: ids[int(value)] if 0 <= int(value) < len(ids) else "")
        )
        ax.set_ylabel("charger")
        bar = figure.colorbar(image, ax=ax, location="right", fraction=0.04, pad=0.01)
        bar.set_label("occupied\n[fraction of time]")
    ax = axes[-1]
    handles = []
    if total is not None:
        ax.fill_between(x, total, 0, color=_COLOR["ev"], alpha=0.5, linewidth=0)
        handles += ax.plot(x, total, color=_COLOR["ev"], linewidth=0.8, label="total charger power")
        ax.set_ylabel("charger power [kW]")
    if count is not None:
        twin = ax.twinx() if total is not None else ax
        handles += twin.plot(
            x, count, color="black", linewidth=0.9, drawstyle=axis.steps, label="EVs connected"
        )
        twin.set_ylabel("EVs connected [count]")
        twin.set_ylim(bottom=0)
        if twin is not ax:
            twin.grid(False)
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False)
    axis.apply(axes)
    return figure


def _voltage(
    table: pd.DataFrame,
    axis: _TimeAxis,
    title: str,
    voltage_limits_pu: tuple[float, float],
    loading_limit_pct: float = 100.0,
) -> Any:
    low, high = _col(table, "grid_vm_min_pu"), _col(table, "grid_vm_max_pu")
    site = _col(table, "grid_vm_site_pu")
    if low is None and high is None and site is None:
        return None
    v_min_pu, v_max_pu = voltage_limits_pu
    loadings = [
        (values, label)
        for values, label in (
            (_col(table, "grid_line_loading_max_pct"), "most loaded line"),
            (_col(table, "grid_trafo_loading_max_pct"), "most loaded transformer"),
        )
        if values is not None
    ]
    figure, axes = _figure(title, "feeder voltage", [2, 1] if loadings else [1])
    ax, x = axes[0], axis.x
    if low is not None and high is not None:
        ax.fill_between(
            x, low, high, color="#1f77b4", alpha=0.3, linewidth=0, label="feeder min–max"
        )
    else:
        for values, label in ((low, "feeder min"), (high, "feeder max")):
            if values is not None:
                ax.plot(x, values, color="#1f77b4", linewidth=0.9, label=label)
    if site is not None:
        ax.plot(x, site, color="black", linewidth=1.1, label="site bus")
    for limit, name in ((v_max_pu, "upper"), (v_min_pu, "lower")):
        ax.axhline(
            limit,
            color=_COLOR["limit"],
            linestyle="--",
            linewidth=1.1,
            label=f"{name} limit {limit:g} p.u.",
        )
    data = [v for v in (low, high, site) if v is not None]
    finite = np.concatenate(data)[np.isfinite(np.concatenate(data))]
    bottom = min(v_min_pu, finite.min()) if finite.size else v_min_pu
    top = max(v_max_pu, finite.max()) if finite.size else v_max_pu
    margin = 0.05 * (top - bottom) + 1e-3
    ax.set_ylim(bottom - margin, top + margin)
    ax.set_ylabel("voltage [p.u.]")
    _legend(ax)
    if loadings:
        for (values, label), color in zip(loadings, ("#8c564b", "#e377c2"), strict=False):
            axes[1].plot(x, values, color=color, linewidth=1.0, label=label)
        axes[1].axhline(
            loading_limit_pct,
            color=_COLOR["limit"],
            linestyle="--",
            linewidth=1.1,
            label=f"limit {loading_limit_pct:g} %",
        )
        axes[1].set_ylabel("loading [%]")
        _legend(axes[1])
    axis.apply(axes)
    return figure
