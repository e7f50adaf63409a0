"""Telemetry validation: one Qubit ``data_quality`` value per point, by explicit rules.

Rules, applied in this order to each point:

1. value NaN (or a slot inserted for a missing timestamp) -> ``missing``;
2. value infinite, below ``bounds.low`` or above ``bounds.high`` (beyond ``bounds.tolerance``)
   -> ``error`` with flag ``out_of_range``;
3. ``bounds.non_decreasing`` (an energy register) and the value is below the highest earlier
   valid value -> ``error`` with flag ``out_of_range``; the register is then judged against that
   highest value, so a meter reset shows up as errors until the register catches up;
4. with ``fill="linear"``, a missing point with valid neighbours on both sides (at most
   ``max_fill_s`` apart) is interpolated in time -> ``interpolated`` with flag ``interpolated``;
5. every other point -> ``valid_quality`` (``measured`` by default).

Inputs are copied, never modified. Times must be strictly increasing instants (aware, or naive
with ``tz=`` naming their wall clock).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from qubit_sim.stack.data.errors import TelemetryError
from qubit_sim.stack.data.schema_types import DATA_QUALITIES, format_utc
from qubit_sim.stack.data.time_zones import localize_to_utc, parse_times

__all__ = [
    "ENERGY_REGISTER",
    "SOC_FRACTION",
    "SOC_PERCENT",
    "Bounds",
    "QualitySummary",
    "SeriesValidation",
    "validate_series",
]

_MAX_MESSAGES = 20


@dataclass(frozen=True)
class Bounds:
    """Physical range of one quantity, in the unit of the values.

    Attributes:
        low: Lowest possible value; None = unbounded.
        high: Highest possible value; None = unbounded.
        non_decreasing: The quantity is a cumulative register (energy meter): it never falls.
        tolerance: Slack on every comparison (absolute, same unit), for float round-off.
    """

    low: float | None = None
    high: float | None = None
    non_decreasing: bool = False
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise TelemetryError(f"bounds {name} must be finite or None, got {value!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise TelemetryError(f"bounds low {self.low} is above high {self.high}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise TelemetryError(f"bounds tolerance must be >= 0, got {self.tolerance!r}")


SOC_FRACTION = Bounds(0.0, 1.0)
"""State of charge as a fraction 0..1."""
SOC_PERCENT = Bounds(0.0, 100.0)
"""State of charge in percent 0..100."""
ENERGY_REGISTER = Bounds(low=0.0, non_decreasing=True)
"""A cumulative energy register: never negative, never falling."""


@dataclass(frozen=True)
class QualitySummary:
    """What :func:`validate_series` found.

    Attributes:
        count: Points after inserting missing slots.
        counts: Points per ``data_quality`` value (every value present, zeros included).
        out_of_range: Points outside the bounds (or infinite).
        register_decreases: Points where a non-decreasing register fell.
        interpolated: Points filled by interpolation.
        missing: Points still missing after filling.
        inserted: Slots inserted for timestamps missing from a regular grid.
        messages: Human-readable problems, the first few, each with its UTC time.
    """

    count: int
    counts: dict[str, int]
    out_of_range: int
    register_decreases: int
    interpolated: int
    missing: int
    inserted: int
    messages: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when no point is ``error`` or ``missing``."""
        return self.counts["error"] == 0 and self.counts["missing"] == 0


@dataclass(frozen=True)
class SeriesValidation:
    """Per-point result of :func:`validate_series`.

    Attributes:
        times: UTC instants (with inserted slots).
        values: Values [unit of the input]: interpolated where filled, NaN where missing, the
            original value where flagged ``error``.
        quality: ``data_quality`` per point.
        flags: Qubit data-point flags per point (``out_of_range``, ``interpolated``).
        summary: Counts and messages.
    """

    times: pd.DatetimeIndex
    values: np.ndarray
    quality: np.ndarray
    flags: tuple[tuple[str, ...], ...]
    summary: QualitySummary

    def usable(self) -> np.ndarray:
        """Mask of points that are neither ``missing`` nor ``error``."""
        return (self.quality != "missing") & (self.quality != "error")

    def data_points(
        self, *, decimals: int | None = None, boolean: bool = False
    ) -> list[dict[str, Any]]:
        """Qubit TimeSeries ``data_points``: timestamp (``Z``), value (null when missing or
        infinite), quality, flags.

        Args:
            decimals: Round numeric values to this many decimals.
            boolean: Write values as booleans (non-zero -> true).
        """
        stamps = _format_times(self.times)
        values: list[Any]
        finite = np.isfinite(self.values)
        if boolean:
            values = [bool(v) for v in self.values != 0]
        else:
            rounded = np.round(self.values, decimals) if decimals is not None else self.values
            values = (rounded + 0.0).tolist()  # + 0.0 turns -0.0 into 0.0
        points = []
        for i, stamp in enumerate(stamps):
            point: dict[str, Any] = {
                "timestamp": stamp,
                "value": values[i] if finite[i] else None,
                "quality": str(self.quality[i]),
            }
            if self.flags[i]:
                point["flags"] = list(self.flags[i])
            points.append(point)
        return points

    def statistics(self, *, include_sum: bool = False) -> dict[str, Any]:
        """Qubit TimeSeries ``statistics`` over the usable points (count is every point)."""
        stats: dict[str, Any] = {
            "count": self.summary.count,
            "missing_count": self.summary.counts["missing"],
        }
        usable = self.values[self.usable() & np.isfinite(self.values)]
        if len(usable):
            stats.update(
                min=float(usable.min()),
                max=float(usable.max()),
                mean=float(usable.mean()),
                median=float(np.median(usable)),
                std_dev=float(usable.std()),
            )
            if include_sum:
                stats["sum"] = float(usable.sum())
        return stats

    def validation(self, method: str = "qubit_sim range and register checks") -> dict[str, Any]:
        """Qubit TimeSeries ``validation`` object: method, passed, errors."""
        return {
            "method": method,
            "passed": self.summary.passed,
            "errors": list(self.summary.messages),
        }


def _format_times(times: pd.DatetimeIndex) -> list[str]:
    if len(times) and (times.asi8 % 1_000_000_000 == 0).all():
        # numpy formats whole seconds ~50x faster than DatetimeIndex.strftime
        seconds = times.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[s]")
        return [text + "Z" for text in np.datetime_as_string(seconds, unit="s")]
    return [format_utc(t.to_pydatetime()) for t in times]


def _utc_times(times: Any, tz: str | None) -> pd.DatetimeIndex:
    index = parse_times(times)
    if index.tz is None:
        if tz is None:
            raise TelemetryError(
                "times have no time zone; pass tz='UTC' if they are UTC, or the IANA zone of "
                "their wall clock (DST gaps and overlaps then raise)"
            )
        index = localize_to_utc(index, tz)
    return index.tz_convert("UTC").as_unit("ns")


def _insert_slots(
    times: pd.DatetimeIndex, values: np.ndarray, interval_s: float
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    step_ns = int(round(interval_s * 1e9))
    if step_ns <= 0:
        raise TelemetryError(f"interval_s must be positive, got {interval_s!r}")
    offsets = times.asi8 - times.asi8[0]
    if (offsets % step_ns).any():
        at = int(np.argmax(offsets % step_ns != 0))
        raise TelemetryError(
            f"time {format_utc(times[at].to_pydatetime())} (position {at}) is off the "
            f"{interval_s:g} s grid that starts at {format_utc(times[0].to_pydatetime())}"
        )
    slot = offsets // step_ns
    grid = np.arange(int(slot[-1]) + 1, dtype=np.int64)
    full = np.full(len(grid), np.nan)
    full[slot] = values
    inserted = np.ones(len(grid), dtype=bool)
    inserted[slot] = False
    new_times = pd.DatetimeIndex(times.asi8[0] + grid * step_ns).tz_localize("UTC")
    return new_times, full, inserted


def validate_series(
    times: Sequence[Any] | pd.DatetimeIndex,
    values: Sequence[float] | np.ndarray,
    bounds: Bounds | None = None,
    *,
    tz: str | None = None,
    interval_s: float | None = None,
    fill: Literal["linear"] | None = None,
    max_fill_s: float | None = None,
    valid_quality: Literal["measured", "validated", "estimated", "manual"] = "measured",
) -> SeriesValidation:
    """Flag each telemetry point with a Qubit ``data_quality`` value (rules: module docstring).

    Args:
        times: Instants of the points, strictly increasing.
        values: One value per time; None and NaN are missing, booleans count as 0/1.
        bounds: Physical range of the quantity; None checks nothing but NaN.
        tz: Wall-clock zone of naive ``times`` (None: naive times are an error).
        interval_s: Regular spacing [s]: timestamps missing from the grid are inserted as
            missing points (then filled if ``fill`` is given).
        fill: ``"linear"`` fills missing points between valid neighbours by time.
        max_fill_s: Longest span [s] between the valid neighbours that may be filled.
        valid_quality: Quality of points passing every check.

    Raises:
        TelemetryError: shapes differ, times are naive/unordered/off the grid, bad options.
    """
    index = _utc_times(times, tz)
    if not isinstance(values, np.ndarray) and any(isinstance(v, str) for v in values):
        raise TelemetryError("values must be numbers (None for missing), not strings")
    try:
        data = np.array(values, dtype=float, copy=True)
    except (TypeError, ValueError) as exc:
        raise TelemetryError(f"values must be numbers (None for missing): {exc}") from None
    if data.ndim != 1 or len(data) != len(index):
        raise TelemetryError(f"got {len(index)} times but values of shape {data.shape}")
    if fill not in (None, "linear"):
        raise TelemetryError(f"fill must be None or 'linear', got {fill!r}")
    if valid_quality not in ("measured", "validated", "estimated", "manual"):
        raise TelemetryError(f"valid_quality {valid_quality!r} is not a quality of a good point")
    if index.isna().any():
        raise TelemetryError(f"time at position {int(np.argmax(index.isna()))} is missing (NaT)")
    if len(index) > 1 and not (np.diff(index.asi8) > 0).all():
        at = int(np.argmax(np.diff(index.asi8) <= 0)) + 1
        raise TelemetryError(
            f"times must be strictly increasing; position {at} "
            f"({format_utc(index[at].to_pydatetime())}) does not follow position {at - 1}"
        )
    inserted = np.zeros(len(data), dtype=bool)
    if interval_s is not None and len(index):
        index, data, inserted = _insert_slots(index, data, interval_s)
    bounds = bounds or Bounds()
    tol = bounds.tolerance
    missing = np.isnan(data)
    with np.errstate(invalid="ignore"):
        out = ~missing & ~np.isfinite(data)
        if bounds.low is not None:
            out |= ~missing & (data < bounds.low - tol)
        if bounds.high is not None:
            out |= ~missing & (data > bounds.high + tol)
    decrease = np.zeros(len(data), dtype=bool)
    highest_before = np.full(len(data), -np.inf)
    if bounds.non_decreasing and len(data):
        candidate = np.where(missing | out, -np.inf, data)
        highest_before = np.concatenate(([-np.inf], np.maximum.accumulate(candidate)[:-1]))
        decrease = ~missing & ~out & (data < highest_before - tol)
    error = out | decrease
    filled = np.zeros(len(data), dtype=bool)
    if fill == "linear":
        data, filled = _fill_linear(index, data, missing, error, max_fill_s)
    still_missing = missing & ~filled
    quality = np.full(len(data), valid_quality, dtype=object)
    quality[still_missing] = "missing"
    quality[error] = "error"
    quality[filled] = "interpolated"
    flags = tuple(
        ("out_of_range",) if error[i] else ("interpolated",) if filled[i] else ()
        for i in range(len(data))
    )
    messages = _messages(index, data, out, decrease, still_missing, bounds, highest_before)
    counts = {name: int((quality == name).sum()) for name in DATA_QUALITIES}
    summary = QualitySummary(
        count=len(data),
        counts=counts,
        out_of_range=int(out.sum()),
        register_decreases=int(decrease.sum()),
        interpolated=int(filled.sum()),
        missing=int(still_missing.sum()),
        inserted=int(inserted.sum()),
        messages=messages,
    )
    return SeriesValidation(index, data, quality, flags, summary)


def _fill_linear(
    index: pd.DatetimeIndex,
    data: np.ndarray,
    missing: np.ndarray,
    error: np.ndarray,
    max_fill_s: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    good = np.flatnonzero(~missing & ~error)
    holes = np.flatnonzero(missing)
    filled = np.zeros(len(data), dtype=bool)
    if not len(good) or not len(holes):
        return data, filled
    after = np.searchsorted(good, holes)
    inside = (after > 0) & (after < len(good))
    holes, after = holes[inside], after[inside]
    left, right = good[after - 1], good[after]
    t = index.asi8.astype(np.float64)
    if max_fill_s is not None:
        short = (t[right] - t[left]) <= max_fill_s * 1e9
        holes, left, right = holes[short], left[short], right[short]
    share = (t[holes] - t[left]) / (t[right] - t[left])
    out = data.copy()
    out[holes] = data[left] + share * (data[right] - data[left])
    filled[holes] = True
    return out, filled


def _messages(
    index: pd.DatetimeIndex,
    data: np.ndarray,
    out: np.ndarray,
    decrease: np.ndarray,
    missing: np.ndarray,
    bounds: Bounds,
    highest_before: np.ndarray,
) -> tuple[str, ...]:
    problems = np.flatnonzero(out | decrease | missing)
    messages = []
    for i in problems[:_MAX_MESSAGES]:
        when = format_utc(index[i].to_pydatetime())
        if missing[i]:
            messages.append(f"{when}: value missing")
        elif decrease[i]:
            messages.append(
                f"{when}: register fell to {data[i]:g} below the earlier reading "
                f"{highest_before[i]:g}"
            )
        else:
            low = "-inf" if bounds.low is None else f"{bounds.low:g}"
            high = "inf" if bounds.high is None else f"{bounds.high:g}"
            span = f"[{low}, {high}]"
            messages.append(f"{when}: value {data[i]:g} outside the physical range {span}")
    if len(problems) > _MAX_MESSAGES:
        messages.append(f"... and {len(problems) - _MAX_MESSAGES} more")
    return tuple(messages)
