"""Shared machinery of the time-series forecasters (PV, load): history, calibration, clipping.

A subclass supplies the point model, :meth:`SeriesForecaster._point`, which sees only a
:class:`~qubit_sim.stack.predict.base.SlotHistory` that ends at the issue slot. The base class

* stores observations and aggregates the ones before the issue slot onto the slot grid,
* logs every point forecast and calibrates split-conformal intervals on the logged forecasts
  (:mod:`~qubit_sim.stack.predict.conformal`),
* when the log is still short (a fresh forecaster), *replays* forecasts at past issue times -
  each one from the history before its own issue time - so the very first ``predict`` already
  has calibrated intervals,
* clips mean and bounds to the physical range (``lower_bound``/``upper_bound``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from qubit_sim.stack.predict.base import (
    COVERAGES,
    DAY_S,
    Forecast,
    ObservationStore,
    SlotHistory,
    TimeLike,
    TimesLike,
    check_slots,
    instant_ns,
    slot_times,
)
from qubit_sim.stack.predict.conformal import DEFAULT_BUCKET_EDGES_S, ConformalCalibrator
from qubit_sim.stack.predict.errors import InsufficientHistoryError, PredictionError

__all__ = ["SeriesForecaster"]

_NS = 1_000_000_000


class SeriesForecaster(ABC):
    """Base of forecasters of one observed time series (see the module docstring).

    Args:
        coverages: Interval coverages, default ``(0.8, 0.95)``.
        calibration_window_s: Forecasts issued within this long before now calibrate [s].
        calibration_every_s: At most one forecast per this long is logged for calibration [s].
        min_calibration_forecasts: Replay past forecasts until this many issued at least half a
            horizon ago are logged.
        replay_step_s: Spacing of replayed issue times [s].
        bucket_edges_s: Lead-time bucket edges of the calibration [s].
        min_residuals: Residuals a bucket needs before it stops borrowing from the pool.
        lower_bound: Physical minimum of the series [unit], or ``None``.
        upper_bound: Physical maximum of the series [unit], or ``None``.
    """

    name: str = "series"
    quantity: str = ""

    def __init__(
        self,
        *,
        coverages: Sequence[float] = COVERAGES,
        calibration_window_s: int = 28 * DAY_S,
        calibration_every_s: int = 3600,
        min_calibration_forecasts: int = 28,
        replay_step_s: int = 6 * 3600,
        bucket_edges_s: Sequence[int] = DEFAULT_BUCKET_EDGES_S,
        min_residuals: int = 30,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
    ) -> None:
        if replay_step_s <= 0:
            raise PredictionError(f"replay_step_s={replay_step_s} must be positive")
        if min_calibration_forecasts < 0:
            raise PredictionError(
                f"min_calibration_forecasts={min_calibration_forecasts} must be >= 0"
            )
        self.calibrator = ConformalCalibrator(
            coverages,
            bucket_edges_s=bucket_edges_s,
            window_s=calibration_window_s,
            min_residuals=min_residuals,
            every_s=calibration_every_s,
        )
        self.min_calibration_forecasts = int(min_calibration_forecasts)
        self.replay_step_s = int(replay_step_s)
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self._store = ObservationStore()

    # -- the point model -------------------------------------------------------------------
    @abstractmethod
    def _lookback_slots(self, slot_s: int) -> int:
        """How many slots before the issue slot the point model reads."""

    @abstractmethod
    def _point(self, history: SlotHistory, horizon_slots: int) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, scale)`` for the slots from ``history.end_slot`` on.

        ``scale`` normalises the residuals of the conformal calibration (1 for absolute errors;
        0 where the truth is known exactly, such as PV at night). Raises
        :class:`InsufficientHistoryError` when the history cannot support a forecast.
        """

    # -- the Forecaster protocol -----------------------------------------------------------
    @property
    def n_observations(self) -> int:
        """Number of observations stored."""
        return len(self._store)

    def observe(self, times_utc: TimesLike, values: Any) -> None:
        """Append observations [unit of the series]; times must not go back."""
        self._store.append(times_utc, values)

    def predict(self, now_utc: TimeLike, horizon_slots: int, slot_s: int = 900) -> Forecast:
        """Forecast ``horizon_slots`` slots from the slot containing ``now_utc``.

        Uses only observations stamped before that slot. Raises
        :class:`InsufficientHistoryError` if there are none the model can use.
        """
        check_slots(horizon_slots, slot_s)
        slot_s, horizon_slots = int(slot_s), int(horizon_slots)
        issue = instant_ns(now_utc) // (slot_s * _NS)
        lookback = self._lookback_slots(slot_s)
        depth = self.calibrator.window_slots(slot_s) + horizon_slots
        history = self._store.slot_history(issue - lookback - depth, issue, slot_s)
        mean, scale = self._point(history.window(issue - lookback, issue), horizon_slots)
        self._replay(history, horizon_slots, lookback)
        lower, upper = self.calibrator.intervals(mean, scale, history)
        self.calibrator.record(slot_s, issue, mean, scale)
        self.calibrator.prune(slot_s, issue - depth)
        return Forecast(
            times_utc=slot_times(issue, horizon_slots, slot_s),
            mean=self._clip(mean),
            lower={c: self._clip(v) for c, v in lower.items()},
            upper={c: self._clip(v) for c, v in upper.items()},
            slot_s=slot_s,
            quantity=self.quantity,
        )

    # -- helpers ---------------------------------------------------------------------------
    def _clip(self, values: np.ndarray) -> np.ndarray:
        if self.lower_bound is None and self.upper_bound is None:
            return values
        # np.clip keeps NaN (an uncalibrated bound stays NaN).
        return np.clip(values, self.lower_bound, self.upper_bound)

    def _replay(self, history: SlotHistory, horizon_slots: int, lookback: int) -> None:
        """Log forecasts at past issue times until the calibration set is big enough."""
        if self.min_calibration_forecasts == 0:
            return
        slot_s, issue = history.slot_s, history.end_slot
        oldest = issue - self.calibrator.window_slots(slot_s)
        newest = issue - (horizon_slots + 1) // 2
        issued = self.calibrator.issued(slot_s)
        mature = int(((issued >= oldest) & (issued <= newest)).sum())
        observed = np.flatnonzero(history.observed())
        if mature >= self.min_calibration_forecasts or not len(observed):
            return
        first_observed = history.first_slot + int(observed[0])
        step = max(self.replay_step_s // slot_s, 1)
        known = set(issued.tolist())
        # Replays sit on a fixed grid, so later calls find them logged instead of adding more.
        candidate = (newest // step) * step
        while mature < self.min_calibration_forecasts and candidate >= oldest:
            if candidate <= first_observed:
                break
            if candidate not in known:
                past = history.window(candidate - lookback, candidate)
                try:
                    mean, scale = self._point(past, horizon_slots)
                except InsufficientHistoryError:
                    break
                self.calibrator.record(slot_s, candidate, mean, scale, force=True)
                mature += 1
            candidate -= step
