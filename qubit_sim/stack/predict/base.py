"""The L2 forecasting interface: :class:`Forecast`, the :class:`Forecaster` protocol, history.

How a forecaster is used (the MPC does this every control cycle, default every 15 min)::

    forecaster.observe(times_utc, values)        # append what was measured since the last call
    fc = forecaster.predict(now_utc, 96)         # 24 h ahead in 15-min slots
    fc.mean, fc.lower[0.8], fc.upper[0.95]       # arrays of length 96
    fc.to_frame()                                # one row per slot

Contract of every forecaster:

* ``observe(times_utc, values)`` appends observations. Times are timezone-aware (or numpy
  ``datetime64``, read as UTC) and never go back: a batch must be sorted and must not start
  before the last observation already stored, else :class:`PredictionError`. ``NaN`` values are
  gaps. A value stamped ``t`` stands for the interval that starts at ``t`` (the recorder's
  convention), so a slot's truth is the mean of the observations stamped inside it.
* ``predict(now_utc, horizon_slots, slot_s=900)`` forecasts ``horizon_slots`` slots of ``slot_s``
  seconds. Slots lie on a grid anchored at the Unix epoch (so 15-min slots start at :00, :15, ...);
  the first slot is the one containing ``now`` (``now`` floored to the grid). The forecast uses
  **only observations stamped before the first slot** - the forecaster keeps everything it was
  given and slices by time, so feeding it future truth before calling ``predict(now)`` does not
  change the answer. Observations inside the current, unfinished slot are ignored too, so a slot
  is either fully known or not used.
* ``Forecast.mean`` is the expected value of each slot [unit of the observed series, per slot mean
  of a rate such as kW, or per slot total for event quantities such as EV energy in kWh];
  ``lower``/``upper`` map a coverage (0.8, 0.95) to interval bounds. An interval is ``NaN`` where
  a forecaster has nothing yet to calibrate it with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeAlias, runtime_checkable

import numpy as np
import pandas as pd

from qubit_sim.stack.predict.errors import InsufficientHistoryError, PredictionError

__all__ = [
    "COVERAGES",
    "DAY_S",
    "Forecast",
    "Forecaster",
    "ObservationStore",
    "SlotHistory",
    "TimeLike",
    "TimesLike",
    "aggregate_slots",
    "check_slots",
    "instant_ns",
    "predict_spans",
    "slot_times",
    "to_utc_ns",
]

COVERAGES: tuple[float, ...] = (0.8, 0.95)
DAY_S = 86_400
_NS = 1_000_000_000

TimeLike: TypeAlias = datetime | pd.Timestamp | np.datetime64 | str
TimesLike: TypeAlias = pd.DatetimeIndex | pd.Series | np.ndarray | Sequence[Any]


def to_utc_ns(times: TimesLike) -> np.ndarray:
    """Times as int64 nanoseconds since the Unix epoch (UTC).

    Raises:
        PredictionError: for naive pandas/datetime timestamps (numpy ``datetime64`` is read as
            UTC) or values that are not times.
    """
    if isinstance(times, np.ndarray) and np.issubdtype(times.dtype, np.datetime64):
        return times.astype("datetime64[ns]").astype(np.int64)
    try:
        index = pd.DatetimeIndex(times)
    except (TypeError, ValueError) as exc:
        raise PredictionError(f"cannot read times {times!r:.80}: {exc}") from exc
    if index.tz is None and len(index):
        raise PredictionError(
            f"times starting {index[0]} are naive; localise them to UTC "
            "(e.g. index.tz_localize('UTC'))"
        )
    if index.tz is not None:
        index = index.tz_convert("UTC")
    return np.asarray(index.as_unit("ns").asi8, dtype=np.int64)


def instant_ns(now: TimeLike) -> int:
    """One instant as int nanoseconds since the Unix epoch (UTC); naive values raise."""
    if isinstance(now, np.datetime64):
        return int(now.astype("datetime64[ns]").astype(np.int64))
    try:
        stamp = pd.Timestamp(now)
    except (TypeError, ValueError) as exc:
        raise PredictionError(f"cannot read time {now!r}: {exc}") from exc
    if stamp.tzinfo is None:
        raise PredictionError(f"time {now!r} is naive; pass a timezone-aware UTC time")
    return int(stamp.tz_convert("UTC").value)


def check_slots(horizon_slots: int, slot_s: int) -> None:
    """Validate a horizon [slots] and slot length [s] (a whole divisor of one day)."""
    if isinstance(horizon_slots, bool) or int(horizon_slots) != horizon_slots or horizon_slots < 1:
        raise PredictionError(f"horizon_slots={horizon_slots!r} must be a positive integer")
    if isinstance(slot_s, bool) or int(slot_s) != slot_s or slot_s <= 0 or DAY_S % int(slot_s):
        raise PredictionError(
            f"slot_s={slot_s!r} must be a positive whole number of seconds dividing one day "
            "(e.g. 900 or 3600)"
        )


def slot_times(first_slot: int, n_slots: int, slot_s: int) -> pd.DatetimeIndex:
    """UTC start times of ``n_slots`` slots from epoch-grid slot number ``first_slot``."""
    start_ns = (first_slot + np.arange(n_slots, dtype=np.int64)) * (slot_s * _NS)
    return pd.DatetimeIndex(start_ns.astype("datetime64[ns]")).tz_localize("UTC")


def _coverage_label(coverage: float) -> str:
    return f"{coverage * 100:g}".replace(".", "_")


@dataclass(frozen=True, eq=False)
class Forecast:
    """A forecast on a slot grid with prediction intervals.

    Attributes:
        times_utc: Slot start times (tz-aware UTC), one per slot.
        mean: Point forecast per slot [unit of the series].
        lower: Coverage (e.g. 0.8, 0.95) -> lower bound per slot [unit].
        upper: Coverage -> upper bound per slot [unit].
        slot_s: Slot length [s].
        quantity: What is forecast, e.g. ``"pv_available_kw"``.
    """

    times_utc: pd.DatetimeIndex
    mean: np.ndarray
    lower: Mapping[float, np.ndarray] = field(default_factory=dict)
    upper: Mapping[float, np.ndarray] = field(default_factory=dict)
    slot_s: int = 900
    quantity: str = ""

    def __post_init__(self) -> None:
        n = len(self.times_utc)
        if np.shape(self.mean) != (n,):
            raise PredictionError(f"mean has shape {np.shape(self.mean)}, expected ({n},)")
        if set(self.lower) != set(self.upper):
            raise PredictionError(
                f"lower coverages {sorted(self.lower)} differ from upper {sorted(self.upper)}"
            )
        for coverage in self.lower:
            if not 0.0 < coverage < 1.0:
                raise PredictionError(f"coverage {coverage!r} must lie strictly between 0 and 1")
            for bound in (self.lower[coverage], self.upper[coverage]):
                if np.shape(bound) != (n,):
                    raise PredictionError(
                        f"interval {coverage} has shape {np.shape(bound)}, expected ({n},)"
                    )

    @property
    def coverages(self) -> tuple[float, ...]:
        """Coverages of the intervals, ascending."""
        return tuple(sorted(self.lower))

    def interval(self, coverage: float) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` of the interval with this coverage."""
        if coverage not in self.lower:
            raise PredictionError(
                f"no {coverage} interval in this forecast; it has {list(self.coverages)}"
            )
        return self.lower[coverage], self.upper[coverage]

    def to_frame(self) -> pd.DataFrame:
        """One row per slot: ``mean``, then ``lower_80``, ``upper_80``, ``lower_95``, ..."""
        columns: dict[str, np.ndarray] = {"mean": np.asarray(self.mean)}
        for coverage in self.coverages:
            label = _coverage_label(coverage)
            columns[f"lower_{label}"] = np.asarray(self.lower[coverage])
            columns[f"upper_{label}"] = np.asarray(self.upper[coverage])
        return pd.DataFrame(columns, index=pd.DatetimeIndex(self.times_utc, name="time"))


@runtime_checkable
class Forecaster(Protocol):
    """What the MPC and :func:`~qubit_sim.stack.predict.backtest.backtest` need from a forecaster."""

    def observe(self, times_utc: TimesLike, values: Any) -> None:
        """Append observations; times must not go back (see the module docstring)."""
        ...

    def predict(self, now_utc: TimeLike, horizon_slots: int, slot_s: int = 900) -> Forecast:
        """Forecast ``horizon_slots`` slots from the slot containing ``now_utc``."""
        ...


def aggregate_slots(
    times_ns: np.ndarray,
    values: np.ndarray,
    slot_s: int,
    first_slot: int,
    end_slot: int,
    how: str = "mean",
) -> np.ndarray:
    """Observations onto slots ``first_slot .. end_slot - 1`` of the epoch grid.

    ``how="mean"`` gives the mean of the finite observations stamped in each slot (``NaN`` if
    none); ``how="sum"`` their sum (0 if none), for event quantities.
    """
    n_slots = max(int(end_slot - first_slot), 0)
    index = times_ns // (slot_s * _NS) - first_slot
    keep = (index >= 0) & (index < n_slots) & np.isfinite(values)
    index = index[keep]
    sums = np.bincount(index, weights=values[keep], minlength=n_slots)
    if how == "sum":
        return sums
    if how != "mean":
        raise PredictionError(f"aggregate how={how!r}; use 'mean' or 'sum'")
    counts = np.bincount(index, minlength=n_slots)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


@dataclass(frozen=True, eq=False)
class SlotHistory:
    """Past slot values on the epoch grid: ``values[i]`` is slot ``first_slot + i`` [unit].

    ``NaN`` marks a slot without observations. Every slot is before :attr:`end_slot`.
    """

    slot_s: int
    first_slot: int
    values: np.ndarray

    @property
    def end_slot(self) -> int:
        """First slot *not* in the history (the issue slot of a forecast)."""
        return self.first_slot + len(self.values)

    @property
    def slots_per_day(self) -> int:
        """Slots in one day."""
        return DAY_S // self.slot_s

    def at(self, slots: np.ndarray) -> np.ndarray:
        """Values at epoch-grid slot numbers ``slots``; ``NaN`` outside the history."""
        offset = np.asarray(slots, dtype=np.int64) - self.first_slot
        inside = (offset >= 0) & (offset < len(self.values))
        out = np.full(offset.shape, np.nan)
        out[inside] = self.values[offset[inside]]
        return out

    def window(self, first_slot: int, end_slot: int) -> SlotHistory:
        """The part of the history within ``[first_slot, end_slot)``."""
        lo = min(max(first_slot - self.first_slot, 0), len(self.values))
        hi = min(max(end_slot - self.first_slot, lo), len(self.values))
        return SlotHistory(self.slot_s, self.first_slot + lo, self.values[lo:hi])

    def observed(self) -> np.ndarray:
        """Boolean mask of slots with a value."""
        return np.isfinite(self.values)


class ObservationStore:
    """Append-only time series of observations; slices by time so nothing leaks from the future."""

    def __init__(self) -> None:
        self._times = np.empty(0, dtype=np.int64)
        self._values = np.empty(0, dtype=float)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def last_ns(self) -> int | None:
        """Time of the latest observation [ns since epoch], or ``None`` if empty."""
        return int(self._times[self._size - 1]) if self._size else None

    @property
    def first_ns(self) -> int | None:
        """Time of the earliest observation [ns since epoch], or ``None`` if empty."""
        return int(self._times[0]) if self._size else None

    def append(self, times_utc: TimesLike, values: Any) -> None:
        """Append a batch; raises :class:`PredictionError` if time goes back or shapes differ."""
        times_ns = to_utc_ns(times_utc)
        vals = np.asarray(values, dtype=float).reshape(-1)
        if times_ns.shape != vals.shape:
            raise PredictionError(
                f"{len(times_ns)} times but {len(vals)} values; pass one value per time"
            )
        if not len(times_ns):
            return
        if np.isinf(vals).any():
            raise PredictionError("values contain infinities; use NaN for missing observations")
        if (np.diff(times_ns) < 0).any():
            bad = int(np.argmax(np.diff(times_ns) < 0))
            raise PredictionError(
                f"observation times go back at position {bad + 1} "
                f"({pd.Timestamp(times_ns[bad + 1], tz='UTC')} after "
                f"{pd.Timestamp(times_ns[bad], tz='UTC')}); sort them"
            )
        last = self.last_ns
        if last is not None and times_ns[0] < last:
            raise PredictionError(
                f"observation at {pd.Timestamp(int(times_ns[0]), tz='UTC')} is before the last "
                f"one already observed ({pd.Timestamp(last, tz='UTC')}); observations must be "
                "appended in time order"
            )
        need = self._size + len(times_ns)
        if need > len(self._times):
            capacity = max(need, 2 * len(self._times), 1024)
            self._times = np.resize(self._times, capacity)
            self._values = np.resize(self._values, capacity)
        self._times[self._size : need] = times_ns
        self._values[self._size : need] = vals
        self._size = need

    def between(self, start_ns: int | None, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """``(times_ns, values)`` stamped in ``[start_ns, end_ns)`` (views; do not modify)."""
        times = self._times[: self._size]
        lo = 0 if start_ns is None else int(np.searchsorted(times, start_ns, side="left"))
        hi = int(np.searchsorted(times, end_ns, side="left"))
        return times[lo:hi], self._values[lo:hi]

    def slot_history(
        self, first_slot: int, end_slot: int, slot_s: int, how: str = "mean"
    ) -> SlotHistory:
        """Slot values over ``[first_slot, end_slot)`` from observations stamped before ``end_slot``."""
        times, values = self.between(first_slot * slot_s * _NS, end_slot * slot_s * _NS)
        return SlotHistory(
            slot_s, first_slot, aggregate_slots(times, values, slot_s, first_slot, end_slot, how)
        )


def predict_spans(
    forecaster: Forecaster, now_utc: pd.Timestamp, n: int, slot_s: int, held: float
) -> np.ndarray:
    """Mean forecasts of the ``n`` spans of ``slot_s`` seconds from ``now_utc``.

    A forecaster forecasts slots of the epoch grid from the one containing ``now_utc``. When
    ``now_utc`` lies inside a grid slot, each span is the overlap-weighted mean of the two grid
    slots it covers (one more slot is forecast to reach the last span). Non-finite values, and a
    forecaster without the history to forecast from yet, give ``held`` (persistence).
    """
    # How far into its grid slot `now_utc` lies [s].
    offset = int(now_utc.value // _NS) % slot_s
    try:
        mean = forecaster.predict(now_utc, n + 1 if offset else n, slot_s).mean
    except InsufficientHistoryError:
        return np.full(n, held)
    mean = np.asarray(mean, dtype=float)
    mean = np.where(np.isfinite(mean), mean, held)
    if offset:
        mean = (mean[:-1] * (slot_s - offset) + mean[1:] * offset) / slot_s
    return mean
