"""Site load forecasts: seasonal naive and ridge regression on calendar and lag features.

``seasonal_naive``
    Each slot takes the value of the same slot one season (default a week) before the issue
    time; with less than a season of history, the same slot yesterday. Missing values fall back
    to the season before, then to yesterday, then to the mean of the history.

``regression``
    Ridge least squares (numpy, standardised features, unpenalised intercept) fitted at every
    issue on the last ``window_days`` of slots. Features: local hour-of-day one-hot separately for
    weekdays and weekends, Fourier terms of the local time of day and - from two weeks of history
    on - of the week and a linear trend, and the lags ``y(t - 1 day)`` and ``y(t - 7 days)`` when the history has enough rows with
    them. Slots more than a day ahead use the model's own forecasts as lag-1-day values. With less
    than about a day of history the regression falls back to the seasonal naive forecast.

Values are whatever the observed series is, typically site background load [kW] (``load_kw``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd

from qubit_sim.stack.predict.base import DAY_S, SlotHistory
from qubit_sim.stack.predict.calendar import CalendarCache
from qubit_sim.stack.predict.errors import InsufficientHistoryError, PredictionError
from qubit_sim.stack.predict.series import SeriesForecaster

__all__ = ["LoadForecaster", "LoadMethod"]

LoadMethod = Literal["seasonal_naive", "regression"]
_METHODS = ("seasonal_naive", "regression")
_N_GROUPS = 48  # local hour of day x (weekday, weekend)
_LONG_HISTORY_DAYS = 14


class LoadForecaster(SeriesForecaster):
    """Load forecaster (see the module docstring for the two methods).

    Args:
        method: ``"seasonal_naive"`` or ``"regression"``.
        tz: Time zone of the calendar features (the site's), e.g. ``"Europe/Amsterdam"``.
        season_days: Season of the naive method [days].
        window_days: Training window of the regression [days].
        ridge_alpha: Ridge penalty on standardised features (per training row).
        fourier_daily: Harmonics of the time of day.
        fourier_weekly: Harmonics of the week.
        trend: Include a linear trend feature.
        nonnegative: Clip forecasts and bounds at 0 (a load that never injects).
        quantity: Label of the forecast series.
        **calibration: Keyword arguments of
            :class:`~qubit_sim.stack.predict.series.SeriesForecaster` (coverages, windows).
    """

    def __init__(
        self,
        method: LoadMethod = "regression",
        *,
        tz: str = "UTC",
        season_days: int = 7,
        window_days: int = 28,
        ridge_alpha: float = 1e-3,
        fourier_daily: int = 3,
        fourier_weekly: int = 2,
        trend: bool = True,
        nonnegative: bool = True,
        quantity: str = "load_kw",
        **calibration: Any,
    ) -> None:
        if method not in _METHODS:
            raise PredictionError(f"unknown load method {method!r}; use one of {list(_METHODS)}")
        if season_days < 1 or window_days < 1:
            raise PredictionError(
                f"season_days={season_days} and window_days={window_days} must be >= 1"
            )
        if ridge_alpha < 0:
            raise PredictionError(f"ridge_alpha={ridge_alpha} must be >= 0")
        super().__init__(lower_bound=0.0 if nonnegative else None, **calibration)
        self.method = method
        self.name = f"load_{method}"
        self.quantity = quantity
        self._calendar = CalendarCache(tz)
        self.tz = tz
        self.season_days = int(season_days)
        self.window_days = int(window_days)
        self.ridge_alpha = float(ridge_alpha)
        self.fourier_daily = int(fourier_daily)
        self.fourier_weekly = int(fourier_weekly)
        self.trend = bool(trend)

    def _lookback_slots(self, slot_s: int) -> int:
        spd = DAY_S // slot_s
        if self.method == "regression":
            return (self.window_days + 8) * spd
        return (3 * self.season_days + 1) * spd

    def _point(self, history: SlotHistory, horizon_slots: int) -> tuple[np.ndarray, np.ndarray]:
        if self.method == "regression":
            mean = self._regression(history, horizon_slots)
        else:
            mean = self._seasonal_naive(history, horizon_slots)
        return mean, np.ones(horizon_slots)

    # -- seasonal naive --------------------------------------------------------------------
    def _seasonal_naive(self, history: SlotHistory, horizon_slots: int) -> np.ndarray:
        observed = np.flatnonzero(history.observed())
        if not len(observed):
            raise InsufficientHistoryError(
                f"no load observations before {_stamp(history)}; observe some history first"
            )
        spd = history.slots_per_day
        issue = history.end_slot
        season = self.season_days * spd
        first_observed = history.first_slot + int(observed[0])
        periods = [season, spd] if first_observed <= issue - season else [spd]
        steps = np.arange(horizon_slots)
        slots = issue + steps
        values = np.full(horizon_slots, np.nan)
        for period in periods:
            latest = steps // period + 1
            for extra in range(3):
                missing = np.isnan(values)
                if not missing.any():
                    return values
                lag_slots = slots - (latest + extra) * period
                values[missing] = history.at(lag_slots[missing])
        recent = history.values[-spd:]
        fill = np.nanmean(recent) if np.isfinite(recent).any() else np.nanmean(history.values)
        return np.where(np.isnan(values), fill, values)

    # -- ridge regression ------------------------------------------------------------------
    def _regression(self, history: SlotHistory, horizon_slots: int) -> np.ndarray:
        spd = history.slots_per_day
        issue = history.end_slot
        train = np.arange(max(history.first_slot, issue - self.window_days * spd), issue)
        y = history.at(train)
        lag_1d, lag_7d = history.at(train - spd), history.at(train - 7 * spd)
        known = np.isfinite(y)
        lags: list[int] = []
        if (known & np.isfinite(lag_1d) & np.isfinite(lag_7d)).sum() >= 2 * spd:
            lags = [spd, 7 * spd]
        elif (known & np.isfinite(lag_1d)).sum() >= spd:
            lags = [spd]
        rows = known.copy()
        for lag, values in zip((spd, 7 * spd), (lag_1d, lag_7d), strict=True):
            if lag in lags:
                rows &= np.isfinite(values)
        if rows.sum() < spd // 2:
            return self._seasonal_naive(history, horizon_slots)
        # Weekly terms and a trend are confounded with each other below two weeks of rows.
        long = bool(issue - train[rows][0] >= _LONG_HISTORY_DAYS * spd)
        lag_columns = [history.at(train[rows] - lag) for lag in lags]
        group, dense = self._features(train[rows], history.slot_s, issue, lag_columns, long)
        model = _Ridge.fit(_N_GROUPS, group, dense, y[rows], self.ridge_alpha)

        prediction = np.full(horizon_slots, np.nan)
        for start in range(0, horizon_slots, spd):
            steps = np.arange(start, min(start + spd, horizon_slots))
            slots = issue + steps
            columns = []
            for lag in lags:
                source = slots - lag
                values = history.at(source)
                ahead = source >= issue
                values[ahead] = prediction[source[ahead] - issue]
                columns.append(values)
            prediction[steps] = model.predict(
                *self._features(slots, history.slot_s, issue, columns, long)
            )
        return prediction

    def _features(
        self,
        slots: np.ndarray,
        slot_s: int,
        issue: int,
        lag_columns: list[np.ndarray],
        long: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(group, dense)``: hour x day-type group (0..47) and the dense feature columns."""
        calendar = self._calendar(slots, slot_s)
        group = calendar.hour + 24 * calendar.weekend
        columns = []
        day_angle = 2 * math.pi * calendar.tod_s / DAY_S
        week_angle = 2 * math.pi * (calendar.weekday + calendar.tod_s / DAY_S) / 7
        for k in range(1, self.fourier_daily + 1):
            columns += [np.sin(k * day_angle), np.cos(k * day_angle)]
        for k in range(1, self.fourier_weekly + 1 if long else 1):
            columns += [np.sin(k * week_angle), np.cos(k * week_angle)]
        if self.trend and long:
            columns.append((slots - issue) * slot_s / (7 * DAY_S))
        columns += lag_columns
        dense = np.column_stack(columns) if columns else np.empty((len(slots), 0))
        return group, dense.astype(float)


class _Ridge:
    """Ridge regression on standardised features with an unpenalised intercept.

    The features are a one-hot of ``n_groups`` groups plus dense columns. The Gram matrix of the
    one-hot block is diagonal and its cross terms are per-group sums, so it is built with
    ``bincount`` instead of a dense product over every training row.
    """

    def __init__(
        self, n_groups: int, mean: np.ndarray, std: np.ndarray, coef: np.ndarray, intercept: float
    ) -> None:
        self.n_groups = n_groups
        self.mean, self.std, self.coef, self.intercept = mean, std, coef, intercept

    @classmethod
    def fit(
        cls, n_groups: int, group: np.ndarray, dense: np.ndarray, target: np.ndarray, alpha: float
    ) -> _Ridge:
        n_rows, n_dense = dense.shape
        count = np.bincount(group, minlength=n_groups).astype(float)
        cross = np.zeros((n_groups, n_dense))
        for column in range(n_dense):
            cross[:, column] = np.bincount(group, weights=dense[:, column], minlength=n_groups)
        gram = np.block([[np.diag(count), cross], [cross.T, dense.T @ dense]])
        moment = np.concatenate(
            [np.bincount(group, weights=target, minlength=n_groups), dense.T @ target]
        )
        mean = np.concatenate([count, dense.sum(axis=0)]) / n_rows
        intercept = float(target.mean())
        centred_gram = gram - n_rows * np.outer(mean, mean)
        std = np.sqrt(np.clip(np.diag(centred_gram) / n_rows, 0.0, None))
        std[std < 1e-9] = 1.0
        lhs = centred_gram / np.outer(std, std) / n_rows + alpha * np.eye(len(mean))
        rhs = (moment - n_rows * mean * intercept) / std / n_rows
        coef, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
        return cls(n_groups, mean, std, coef, intercept)

    def predict(self, group: np.ndarray, dense: np.ndarray) -> np.ndarray:
        features = np.zeros((len(group), self.n_groups + dense.shape[1]))
        features[np.arange(len(group)), group] = 1.0
        features[:, self.n_groups :] = dense
        # A missing lag contributes its training mean, i.e. nothing.
        filled = np.where(np.isfinite(features), features, self.mean)
        return self.intercept + ((filled - self.mean) / self.std) @ self.coef


def _stamp(history: SlotHistory) -> str:
    return str(pd.Timestamp(history.end_slot * history.slot_s, unit="s", tz="UTC"))
