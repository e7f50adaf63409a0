"""One column of a run's time series -> one Qubit TimeSeries document, quality-checked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from qubit_sim.stack.data.errors import ExportError
from qubit_sim.stack.data.models import TimeSeries
from qubit_sim.stack.data.results_reader import RunData
from qubit_sim.stack.data.telemetry import Bounds, validate_series
from qubit_sim.units import SECONDS_PER_HOUR

__all__ = ["SeriesSpec", "build_timeseries", "interval_name", "interval_seconds"]

_INTERVAL = re.compile(r"(\d+)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGGREGATION = {"average": "average", "last": "last", "max": "max"}
# float round-off of the simulator's sums, in the series' own unit
_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SeriesSpec:
    """How one column becomes a TimeSeries.

    Attributes:
        column: Column of ``timeseries.parquet``.
        key: Part of the series id naming the quantity (``main_active_power``).
        parameter: Qubit ``measurement.parameter``.
        unit: Qubit ``measurement_unit``.
        meter_id: Source meter, or None for a calculated series.
        description: ``measurement.description`` (states the sign convention).
        asset_id: Related asset.
        low, high: Physical range [unit] checked on every point.
        scale: Factor from the column's unit to ``unit`` (100 for SOC fraction -> percent).
        aggregate: How steps are combined into a longer interval.
        register: Integrate the power column [kW] into an energy register [kWh].
        boolean: Write the values as booleans.
    """

    column: str
    key: str
    parameter: str
    unit: str
    meter_id: str | None
    description: str
    asset_id: str | None = None
    low: float | None = None
    high: float | None = None
    scale: float = 1.0
    aggregate: Literal["average", "last", "max"] = "average"
    register: bool = False
    boolean: bool = False


def interval_seconds(interval: str | None, step_s: int) -> int:
    """Length [s] of a Qubit ``data_interval`` (``"15m"``, ``"1h"``, ...); None = the step.

    Raises:
        ExportError: ``"1M"``/``"irregular"``, an unknown interval, or one that is not a whole
            multiple of the step.
    """
    if interval is None:
        return step_s
    match = _INTERVAL.fullmatch(interval) if isinstance(interval, str) else None
    if match is None:
        raise ExportError(
            f"interval {interval!r} is not a fixed Qubit data interval; use one of 1s, 5s, 10s, "
            "30s, 1m, 5m, 10m, 15m, 30m, 1h, 1d, 1w"
        )
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if interval not in (
        "1s",
        "5s",
        "10s",
        "30s",
        "1m",
        "5m",
        "10m",
        "15m",
        "30m",
        "1h",
        "1d",
        "1w",
    ):
        raise ExportError(f"interval {interval!r} is not in the Qubit data_interval enum")
    if seconds % step_s:
        raise ExportError(
            f"interval {interval!r} ({seconds} s) is not a multiple of the run's step ({step_s} s)"
        )
    return seconds


def interval_name(interval_s: int) -> str:
    """The Qubit ``data_interval`` of a length [s], or ``"irregular"`` when it has none."""
    names = {1: "1s", 5: "5s", 10: "10s", 30: "30s", 60: "1m", 300: "5m", 600: "10m",
             900: "15m", 1800: "30m", 3600: "1h", 86400: "1d", 604800: "1w"}  # fmt: skip
    return names.get(interval_s, "irregular")


def _resample(
    values: np.ndarray, t_s: np.ndarray, interval_s: int, how: str
) -> tuple[np.ndarray, np.ndarray]:
    """Bin offsets [s] from the first step and the aggregated value per bin."""
    bins = (t_s - t_s[0]) // interval_s
    if how == "last":
        last = np.r_[np.flatnonzero(np.diff(bins)), len(bins) - 1]
        return bins[last] * interval_s, values[last]
    grouped = pd.Series(values).groupby(bins)
    table = grouped.mean() if how == "average" else grouped.max()
    return table.index.to_numpy() * interval_s, table.to_numpy(dtype=float)


def build_timeseries(
    run: RunData,
    spec: SeriesSpec,
    series_id: str,
    site_id: str,
    interval_s: int,
    *,
    decimals: int | None = 6,
    extra_metadata: dict[str, Any] | None = None,
) -> TimeSeries:
    """The TimeSeries of one column, each point flagged by :func:`validate_series`."""
    frame = run.frame
    if spec.column not in frame.columns:
        raise ExportError(f"timeseries.parquet has no column {spec.column!r}")
    values = frame[spec.column].to_numpy(dtype=float) * spec.scale
    how = spec.aggregate
    if spec.register:
        values = np.cumsum(values * (run.step_s / SECONDS_PER_HOUR))
        how = "last"
    t_s = frame["t_s"].to_numpy(dtype=np.int64)
    if interval_s != run.step_s:
        offsets_s, values = _resample(values, t_s, interval_s, how)
    else:
        offsets_s = t_s - t_s[0]
    times = run.start + pd.to_timedelta(offsets_s, unit="s")
    bounds = Bounds(
        low=0.0 if spec.register else spec.low,
        high=spec.high,
        non_decreasing=spec.register,
        tolerance=_TOLERANCE,
    )
    checked = validate_series(pd.DatetimeIndex(times), values, bounds)
    source: dict[str, Any] = {
        "type": "meter" if spec.meter_id else "calculated",
        "site_id": site_id,
    }
    if spec.meter_id:
        source["meter_id"] = spec.meter_id
    if spec.asset_id:
        source["asset_id"] = spec.asset_id
    end = run.start + pd.Timedelta(seconds=run.duration_s)
    document = {
        "id": series_id,
        "source": source,
        "measurement": {
            "parameter": spec.parameter,
            "unit": spec.unit,
            "description": spec.description,
        },
        "interval": interval_name(interval_s),
        "aggregation": _AGGREGATION[how],
        "timezone": "UTC",
        "data_points": checked.data_points(decimals=decimals, boolean=spec.boolean),
        "statistics": checked.statistics(),
        "period": {
            "start": run.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "validation": checked.validation(),
        "metadata": {
            "column": spec.column,
            "timestamps": "interval start",
            **(extra_metadata or {}),
        },
    }
    return TimeSeries.from_document(document)
