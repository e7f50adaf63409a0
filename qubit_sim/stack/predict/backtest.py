"""Rolling-origin backtests: replay a series, forecast, and score against the later truth.

:func:`backtest` builds a fresh forecaster, then for each issue time ``T`` (``start_after_s``
after the first observation, then every ``every_s``) feeds it the observations stamped before
``T``, calls ``predict(T, horizon_slots, slot_s)`` and keeps the forecast. The truth of each slot
(the mean of the observations in it, or their sum for event series) is gathered for all
forecasts at once and scored: MAE, RMSE, bias, MAE per horizon step, and for each interval the
empirical coverage and mean width. Only issue times whose whole horizon lies inside the series
are used.

:func:`backtest_scenario_frame` runs the standard forecasters on a results ``timeseries.parquet``
frame (columns ``time``, ``pv_available_kw``, ``load_kw``); ``qubit-sim backtest`` wraps it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from qubit_sim.stack.predict.base import (
    DAY_S,
    Forecaster,
    TimesLike,
    aggregate_slots,
    check_slots,
    to_utc_ns,
)
from qubit_sim.stack.predict.errors import PredictionError
from qubit_sim.stack.predict.load import LoadForecaster
from qubit_sim.stack.predict.pv import PvForecaster

__all__ = ["BacktestReport", "backtest", "backtest_scenario_frame"]

_NS = 1_000_000_000


@dataclass(frozen=True, eq=False)
class BacktestReport:
    """Scores of one forecaster over a backtest.

    Attributes:
        name: Forecaster name.
        slot_s: Slot length [s].
        issue_times_utc: Issue time of each forecast (slot start).
        mean: Forecasts, shape (forecasts, horizon) [unit].
        truth: Truth of the same slots [unit]; ``NaN`` where the series has no value.
        lower: Coverage -> lower bounds, same shape.
        upper: Coverage -> upper bounds, same shape.
        mae: Mean absolute error over all scored points [unit].
        rmse: Root mean squared error [unit].
        bias: Mean of forecast minus truth [unit].
        mae_by_step: MAE per horizon step [unit].
        coverage: Coverage -> share of points inside the interval.
        mean_width: Coverage -> mean interval width [unit].
        n_points: Points scored (finite truth and forecast).
    """

    name: str
    slot_s: int
    issue_times_utc: pd.DatetimeIndex
    mean: np.ndarray
    truth: np.ndarray
    lower: dict[float, np.ndarray] = field(default_factory=dict)
    upper: dict[float, np.ndarray] = field(default_factory=dict)
    mae: float = float("nan")
    rmse: float = float("nan")
    bias: float = float("nan")
    mae_by_step: np.ndarray = field(default_factory=lambda: np.empty(0))
    coverage: dict[float, float] = field(default_factory=dict)
    mean_width: dict[float, float] = field(default_factory=dict)
    n_points: int = 0

    @property
    def n_forecasts(self) -> int:
        """Number of forecasts issued."""
        return len(self.issue_times_utc)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (scalars, per-coverage figures, MAE per step)."""
        return {
            "name": self.name,
            "slot_s": self.slot_s,
            "n_forecasts": self.n_forecasts,
            "horizon_slots": int(self.mean.shape[1]) if self.mean.ndim == 2 else 0,
            "n_points": self.n_points,
            "mae": self.mae,
            "rmse": self.rmse,
            "bias": self.bias,
            "coverage": {str(c): v for c, v in self.coverage.items()},
            "mean_width": {str(c): v for c, v in self.mean_width.items()},
            "mae_by_step": [float(v) for v in self.mae_by_step],
        }


def backtest(
    forecaster_factory: Callable[[], Forecaster],
    times_utc: TimesLike,
    truth: Any,
    *,
    start_after_s: int,
    every_s: int = 3600,
    horizon_slots: int = 96,
    slot_s: int = 900,
    aggregate: Literal["mean", "sum"] = "mean",
    end_utc: Any = None,
    name: str | None = None,
) -> BacktestReport:
    """Replay ``truth`` through a fresh forecaster and score its forecasts.

    Args:
        forecaster_factory: Builds the forecaster (called once).
        times_utc: Times of the series, sorted (tz-aware UTC or numpy ``datetime64``).
        truth: Values of the series [unit].
        start_after_s: First issue time, after the first observation [s].
        every_s: Spacing of issue times [s].
        horizon_slots: Slots per forecast.
        slot_s: Slot length [s].
        aggregate: Slot truth as the ``"mean"`` of the observations (rates, kW) or their
            ``"sum"`` (events such as EV session energy, where an empty slot is 0).
        end_utc: End of the series (exclusive); default just after the last observation.
        name: Report name; default the forecaster's ``name``.
    """
    check_slots(horizon_slots, slot_s)
    if every_s <= 0 or start_after_s < 0:
        raise PredictionError(
            f"every_s={every_s} must be positive and start_after_s={start_after_s} >= 0"
        )
    times_ns = to_utc_ns(times_utc)
    values = np.asarray(truth, dtype=float).reshape(-1)
    if times_ns.shape != values.shape or not len(times_ns):
        raise PredictionError(f"{len(times_ns)} times and {len(values)} values; need equal, > 0")
    if (np.diff(times_ns) < 0).any():
        raise PredictionError("backtest times must be sorted")
    slot_ns = slot_s * _NS
    end_ns = int(times_ns[-1]) + 1 if end_utc is None else int(to_utc_ns([end_utc])[0])
    first_slot = int(times_ns[0] // slot_ns)
    end_slot = -(-end_ns // slot_ns)
    grid = aggregate_slots(times_ns, values, slot_s, first_slot, end_slot, aggregate)

    issue_ns = np.arange(int(times_ns[0]) + start_after_s * _NS, end_ns, every_s * _NS)
    issue_ns = issue_ns[issue_ns // slot_ns + horizon_slots <= end_slot]
    if not len(issue_ns):
        span_s = (end_ns - int(times_ns[0])) / _NS
        raise PredictionError(
            f"no issue time fits: the series spans {span_s:.0f} s but start_after_s="
            f"{start_after_s} plus a horizon of {horizon_slots * slot_s} s is needed"
        )
    forecaster = forecaster_factory()
    n, horizon = len(issue_ns), int(horizon_slots)
    mean = np.full((n, horizon), np.nan)
    lower: dict[float, np.ndarray] = {}
    upper: dict[float, np.ndarray] = {}
    fed = 0
    for row, now_ns in enumerate(issue_ns.tolist()):
        upto = int(np.searchsorted(times_ns, now_ns, side="left"))
        if upto > fed:
            forecaster.observe(times_ns[fed:upto].astype("datetime64[ns]"), values[fed:upto])
            fed = upto
        forecast = forecaster.predict(pd.Timestamp(now_ns, tz="UTC"), horizon, slot_s)
        mean[row] = forecast.mean
        for c in forecast.lower:
            lower.setdefault(c, np.full((n, horizon), np.nan))[row] = forecast.lower[c]
            upper.setdefault(c, np.full((n, horizon), np.nan))[row] = forecast.upper[c]

    issue_slots = issue_ns // slot_ns
    truth_matrix = grid[issue_slots[:, None] - first_slot + np.arange(horizon)]
    label = name or str(getattr(forecaster, "name", type(forecaster).__name__))
    return _score(label, slot_s, issue_slots, mean, truth_matrix, lower, upper)


def _score(
    name: str,
    slot_s: int,
    issue_slots: np.ndarray,
    mean: np.ndarray,
    truth: np.ndarray,
    lower: dict[float, np.ndarray],
    upper: dict[float, np.ndarray],
) -> BacktestReport:
    error = mean - truth
    scored = np.isfinite(error)
    abs_error = np.where(scored, np.abs(error), np.nan)
    with np.errstate(invalid="ignore"):
        mae_by_step = (
            np.nanmean(abs_error, axis=0) if scored.any() else np.full(mean.shape[1], np.nan)
        )
    coverage, width = {}, {}
    for c in sorted(lower):
        valid = scored & ~np.isnan(lower[c]) & ~np.isnan(upper[c])
        inside = (truth >= lower[c]) & (truth <= upper[c])
        coverage[c] = float(inside[valid].mean()) if valid.any() else float("nan")
        finite_width = valid & np.isfinite(upper[c])
        width[c] = (
            float((upper[c] - lower[c])[finite_width].mean())
            if finite_width.any()
            else float("nan")
        )
    return BacktestReport(
        name=name,
        slot_s=slot_s,
        issue_times_utc=pd.DatetimeIndex(
            (issue_slots * slot_s * _NS).astype("datetime64[ns]")
        ).tz_localize("UTC"),
        mean=mean,
        truth=truth,
        lower=lower,
        upper=upper,
        mae=float(np.abs(error[scored]).mean()) if scored.any() else float("nan"),
        rmse=float(np.sqrt((error[scored] ** 2).mean())) if scored.any() else float("nan"),
        bias=float(error[scored].mean()) if scored.any() else float("nan"),
        mae_by_step=mae_by_step,
        coverage=coverage,
        mean_width=width,
        n_points=int(scored.sum()),
    )


def backtest_scenario_frame(
    df: pd.DataFrame,
    latitude: float,
    longitude: float,
    pv_kwp: float,
    *,
    tz: str = "UTC",
    pv_tilt_deg: float = 20.0,
    pv_azimuth_deg: float = 180.0,
    pv_inverter_kw: float | None = None,
    pv_losses_pct: float = 14.0,
    start_after_s: int = 2 * DAY_S,
    every_s: int = 3600,
    horizon_slots: int = 96,
    slot_s: int = 900,
) -> dict[str, BacktestReport]:
    """Backtest the standard forecasters on a results time series.

    Args:
        df: ``timeseries.parquet`` frame with ``time`` (UTC), ``pv_available_kw`` (generation,
            >= 0) and ``load_kw``.
        latitude: Site latitude [deg].
        longitude: Site longitude [deg].
        pv_kwp: Installed PV [kWp]; 0 skips the PV forecasters.
        tz: Site time zone (calendar features of the load forecasters).
        pv_tilt_deg: Module tilt [deg].
        pv_azimuth_deg: Module azimuth [deg], 180 = south.
        pv_inverter_kw: AC rating of the PV inverters [kW], or ``None``.
        pv_losses_pct: DC losses [%].
        start_after_s: History before the first forecast [s].
        every_s: Spacing of forecasts [s].
        horizon_slots: Slots per forecast.
        slot_s: Slot length [s].

    Returns:
        Reports keyed ``pv_clearsky``, ``pv_seasonal_naive`` (yesterday's profile; only with PV),
        ``load_seasonal_naive`` and ``load_regression``.
    """
    if "time" not in df.columns:
        raise PredictionError(f"results frame has no 'time' column (columns: {list(df.columns)})")
    times = pd.DatetimeIndex(df["time"])
    if times.tz is None:
        times = times.tz_localize("UTC")
    runs: dict[str, tuple[str, Callable[[], Forecaster]]] = {}
    if pv_kwp > 0 and "pv_available_kw" in df.columns:
        runs["pv_clearsky"] = (
            "pv_available_kw",
            lambda: PvForecaster(
                latitude,
                longitude,
                pv_kwp,
                tilt_deg=pv_tilt_deg,
                azimuth_deg=pv_azimuth_deg,
                inverter_kw=pv_inverter_kw,
                losses_pct=pv_losses_pct,
            ),
        )
        runs["pv_seasonal_naive"] = (
            "pv_available_kw",
            lambda: LoadForecaster(
                "seasonal_naive", tz=tz, season_days=1, quantity="pv_available_kw"
            ),
        )
    if "load_kw" not in df.columns:
        raise PredictionError(
            f"results frame has no 'load_kw' column (columns: {list(df.columns)})"
        )
    runs["load_seasonal_naive"] = ("load_kw", lambda: LoadForecaster("seasonal_naive", tz=tz))
    runs["load_regression"] = ("load_kw", lambda: LoadForecaster("regression", tz=tz))
    return {
        key: backtest(
            factory,
            times,
            df[column].to_numpy(dtype=float),
            start_after_s=start_after_s,
            every_s=every_s,
            horizon_slots=horizon_slots,
            slot_s=slot_s,
            name=key,
        )
        for key, (column, factory) in runs.items()
    }
