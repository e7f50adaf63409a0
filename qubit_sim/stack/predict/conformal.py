"""Split-conformal prediction intervals from a forecaster's own past forecasts.

Every point forecast a forecaster issues is logged with its *scale* (1 for an absolute error, the
clear-sky output for PV, so intervals shrink to nothing at night). When a slot's truth is known,
the normalised residual ``(truth - mean) / scale`` of every logged forecast that covered it joins
the calibration set of its horizon bucket (lead time since issue: < 1 h, < 3 h, < 6 h, < 12 h,
the rest). The interval of coverage ``c`` is then

    [mean + r_lo * scale, mean + r_hi * scale]

with ``r_lo``/``r_hi`` the empirical ``(1 - c)/2`` and ``(1 + c)/2`` quantiles of the bucket's
residuals, using the finite-sample ranks ``floor((n + 1)(1 - c)/2)`` and ``ceil((n + 1)(1 + c)/2)``.
Asymmetric bounds follow skewed errors (clouds only ever take PV away). A bucket with fewer than
``min_residuals`` residuals borrows the pooled residuals of all buckets.

Only forecasts issued before the current issue slot, inside the calibration window, and only
truths before the issue slot are used: the intervals, like the mean, never see the future.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from qubit_sim.stack.predict.base import COVERAGES, DAY_S, SlotHistory
from qubit_sim.stack.predict.errors import PredictionError

__all__ = ["DEFAULT_BUCKET_EDGES_S", "ConformalCalibrator", "conformal_bounds"]

DEFAULT_BUCKET_EDGES_S: tuple[int, ...] = (3600, 3 * 3600, 6 * 3600, 12 * 3600)


def conformal_bounds(residuals: np.ndarray, coverage: float) -> tuple[float, float]:
    """Finite-sample split-conformal ``(r_lo, r_hi)`` of residuals for a central interval.

    With too few residuals for the exact rank the extreme residual is used (the exact method
    would answer an infinite bound); with none, ``(nan, nan)``.
    """
    return _ranked_bounds(np.sort(np.asarray(residuals, dtype=float)), coverage)


def _ranked_bounds(ordered: np.ndarray, coverage: float) -> tuple[float, float]:
    n = len(ordered)
    if n == 0:
        return math.nan, math.nan
    tail = (1.0 - coverage) / 2.0
    # The epsilon keeps e.g. 20 x (1 - 0.8) / 2 = 1.9999999999999996 from flooring to 1.
    rank_lo = math.floor((n + 1) * tail + 1e-9)
    rank_hi = math.ceil((n + 1) * (1.0 - tail) - 1e-9)
    lo = ordered[min(max(rank_lo, 1), n) - 1]
    hi = ordered[min(max(rank_hi, 1), n) - 1]
    return float(lo), float(hi)


class _ForecastLog:
    """Logged forecasts of one slot length as arrays: issue slots, means, scales (rows)."""

    def __init__(self) -> None:
        self.issues = np.empty(0, dtype=np.int64)
        self.means = np.empty((0, 0))
        self.scales = np.empty((0, 0))

    def put(self, issue: int, mean: np.ndarray, scale: np.ndarray) -> None:
        width = max(self.means.shape[1], len(mean))
        if width > self.means.shape[1]:
            pad = width - self.means.shape[1]
            self.means = np.pad(self.means, ((0, 0), (0, pad)), constant_values=np.nan)
            self.scales = np.pad(self.scales, ((0, 0), (0, pad)))
        row_mean = np.full(width, np.nan)
        row_scale = np.zeros(width)
        row_mean[: len(mean)], row_scale[: len(scale)] = mean, scale
        at = int(np.searchsorted(self.issues, issue))
        if at < len(self.issues) and self.issues[at] == issue:
            self.means[at], self.scales[at] = row_mean, row_scale
            return
        self.issues = np.insert(self.issues, at, issue)
        self.means = np.insert(self.means, at, row_mean, axis=0)
        self.scales = np.insert(self.scales, at, row_scale, axis=0)

    def keep_from(self, first_issue: int) -> None:
        start = int(np.searchsorted(self.issues, first_issue))
        if start:
            self.issues = self.issues[start:]
            self.means = self.means[start:]
            self.scales = self.scales[start:]


class ConformalCalibrator:
    """Log of issued forecasts and the intervals calibrated on them.

    Args:
        coverages: Interval coverages to produce, e.g. ``(0.8, 0.95)``.
        bucket_edges_s: Lead-time bucket edges [s] (slot start minus issue time).
        window_s: Only forecasts issued within this long before now calibrate [s].
        min_residuals: A bucket with fewer residuals uses all buckets pooled.
        every_s: Log at most one forecast per this many seconds of issue time [s]; forecasts
            issued every cycle are nearly identical, so denser logging only costs time.
    """

    def __init__(
        self,
        coverages: Sequence[float] = COVERAGES,
        *,
        bucket_edges_s: Sequence[int] = DEFAULT_BUCKET_EDGES_S,
        window_s: int = 28 * DAY_S,
        min_residuals: int = 30,
        every_s: int = 3600,
    ) -> None:
        for coverage in coverages:
            if not 0.0 < coverage < 1.0:
                raise PredictionError(f"coverage {coverage!r} must lie strictly between 0 and 1")
        if list(bucket_edges_s) != sorted(bucket_edges_s) or any(e <= 0 for e in bucket_edges_s):
            raise PredictionError(
                f"bucket_edges_s={list(bucket_edges_s)} must be positive and ascending"
            )
        if window_s <= 0 or every_s <= 0:
            raise PredictionError(
                f"calibration window_s={window_s} and every_s={every_s} must be positive"
            )
        self.coverages = tuple(sorted(float(c) for c in coverages))
        self.bucket_edges_s = tuple(int(e) for e in bucket_edges_s)
        self.window_s = int(window_s)
        self.min_residuals = int(min_residuals)
        self.every_s = int(every_s)
        self._logs: dict[int, _ForecastLog] = {}  # one log per slot length

    def record(
        self,
        slot_s: int,
        issue_slot: int,
        mean: np.ndarray,
        scale: np.ndarray,
        *,
        force: bool = False,
    ) -> bool:
        """Log a forecast issued at ``issue_slot``; returns whether it was logged.

        Unless ``force``, a forecast issued less than ``every_s`` after the latest logged one
        is skipped. A forecast at an already logged issue slot replaces it.
        """
        log = self._logs.setdefault(int(slot_s), _ForecastLog())
        issue_slot = int(issue_slot)
        stride = max(self.every_s // int(slot_s), 1)
        if not force and issue_slot not in log.issues:
            earlier = log.issues[log.issues < issue_slot]
            if len(earlier) and issue_slot - int(earlier[-1]) < stride:
                return False
        log.put(issue_slot, np.asarray(mean, dtype=float), np.asarray(scale, dtype=float))
        return True

    def issued(self, slot_s: int) -> np.ndarray:
        """Issue slots of the logged forecasts, ascending."""
        log = self._logs.get(int(slot_s))
        return np.empty(0, dtype=np.int64) if log is None else log.issues.copy()

    def prune(self, slot_s: int, before_slot: int) -> None:
        """Forget forecasts issued before ``before_slot``."""
        log = self._logs.get(int(slot_s))
        if log is not None:
            log.keep_from(int(before_slot))

    def window_slots(self, slot_s: int) -> int:
        """The calibration window in slots."""
        return -(-self.window_s // int(slot_s))

    def buckets(self, steps: np.ndarray, slot_s: int) -> np.ndarray:
        """Lead-time bucket of each horizon step."""
        return np.searchsorted(np.asarray(self.bucket_edges_s), steps * slot_s, side="right")

    def residuals(self, history: SlotHistory) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, normalised residuals)`` of logged forecasts against the history's truth.

        Uses forecasts issued in ``[end - window, end)`` and truths before ``history.end_slot``.
        """
        slot_s, end = history.slot_s, history.end_slot
        log = self._logs.get(slot_s)
        if log is None:
            return np.empty(0, dtype=np.int64), np.empty(0)
        rows = slice(
            int(np.searchsorted(log.issues, end - self.window_slots(slot_s))),
            int(np.searchsorted(log.issues, end)),
        )
        means, scales = log.means[rows], log.scales[rows]
        steps = np.broadcast_to(np.arange(means.shape[1]), means.shape)
        truth = history.at(log.issues[rows][:, None] + steps)
        valid = np.isfinite(truth) & np.isfinite(means) & (scales > 0)
        return steps[valid], (truth[valid] - means[valid]) / scales[valid]

    def offsets(
        self, history: SlotHistory, horizon_slots: int
    ) -> tuple[dict[float, np.ndarray], dict[float, np.ndarray], int]:
        """Per-step normalised ``(r_lo, r_hi)`` for each coverage, and the residual count."""
        steps, resid = self.residuals(history)
        target_bucket = self.buckets(np.arange(horizon_slots), history.slot_s)
        resid_bucket = self.buckets(steps, history.slot_s)
        lo = {c: np.full(horizon_slots, np.nan) for c in self.coverages}
        hi = {c: np.full(horizon_slots, np.nan) for c in self.coverages}
        pooled: np.ndarray | None = None
        for bucket in np.unique(target_bucket):
            members = resid[resid_bucket == bucket]
            if len(members) < self.min_residuals:
                pooled = np.sort(resid) if pooled is None else pooled
                members = pooled
            else:
                members = np.sort(members)
            where = target_bucket == bucket
            for coverage in self.coverages:
                lo[coverage][where], hi[coverage][where] = _ranked_bounds(members, coverage)
        return lo, hi, len(resid)

    def intervals(
        self, mean: np.ndarray, scale: np.ndarray, history: SlotHistory
    ) -> tuple[dict[float, np.ndarray], dict[float, np.ndarray]]:
        """Lower and upper bounds per coverage for a new forecast issued at ``history.end_slot``."""
        lo, hi, _ = self.offsets(history, len(mean))
        # A zero scale means the truth is known exactly (PV at night), calibrated or not.
        known = scale <= 0
        lower = {c: np.where(known, mean, mean + lo[c] * scale) for c in self.coverages}
        upper = {c: np.where(known, mean, mean + hi[c] * scale) for c in self.coverages}
        return lower, upper
