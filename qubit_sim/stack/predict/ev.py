"""EV demand forecast: expected arrivals and arriving energy per slot, by time of day and day type.

Model, learned at every issue from the sessions of the last ``window_days`` that arrived before
the issue slot:

* **Arrival rate** ``lambda(slot)`` [arrivals per slot] for weekdays and weekends separately:
  arrivals per local slot-of-day bin divided by the *exposure* (how many times that bin occurred
  in the observed span), both smoothed with a circular Gaussian kernel over the time of day
  (``kernel_width_s``). A day type never observed yet borrows the pooled rate.
* **Session energy** [kWh] near that time of day: the sessions of the same day type weighted by
  the same kernel (all sessions if that day type has none).
* Arrivals in a slot are Poisson(``lambda``); the energy arriving in a slot is compound Poisson,
  ``mean = lambda x E[energy]``. Its intervals come from the exact compound-Poisson distribution
  of the kernel-weighted empirical energy distribution (discretised, FFT of the probability
  generating function). Count intervals are Poisson quantiles. Both are central intervals with
  at least the nominal coverage under the model.

"Energy per slot" is the energy the EVs *arriving* in the slot will ask for [kWh], not the
energy charged during the slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import poisson

from qubit_sim.stack.predict.base import (
    COVERAGES,
    DAY_S,
    Forecast,
    ObservationStore,
    TimeLike,
    TimesLike,
    check_slots,
    instant_ns,
    slot_times,
)
from qubit_sim.stack.predict.calendar import CalendarCache
from qubit_sim.stack.predict.errors import InsufficientHistoryError, PredictionError

__all__ = ["EvDemandForecaster"]

_NS = 1_000_000_000


class EvDemandForecaster:
    """Arrivals and arriving energy per slot, learned from observed sessions.

    Args:
        tz: Site time zone of the time-of-day and weekend features.
        window_days: Sessions and exposure of the last this many days are used [days].
        kernel_width_s: Standard deviation of the time-of-day kernel [s].
        history_start_utc: When session observation began. Default: local midnight before the
            first observed arrival. Days without any arrival count as observed only after it.
        coverages: Interval coverages.
        energy_step_kwh: Energy grid of the compound-Poisson intervals [kWh]; default 1/200 of
            the largest session energy.
    """

    name = "ev_demand"
    quantity = "ev_arrival_energy_kwh"

    def __init__(
        self,
        tz: str = "UTC",
        *,
        window_days: int = 28,
        kernel_width_s: float = 1800.0,
        history_start_utc: TimeLike | None = None,
        coverages: Sequence[float] = COVERAGES,
        energy_step_kwh: float | None = None,
    ) -> None:
        if window_days < 1 or kernel_width_s < 0:
            raise PredictionError(
                f"window_days={window_days} must be >= 1 and kernel_width_s={kernel_width_s} >= 0"
            )
        if energy_step_kwh is not None and energy_step_kwh <= 0:
            raise PredictionError(f"energy_step_kwh={energy_step_kwh} must be positive")
        for coverage in coverages:
            if not 0.0 < coverage < 1.0:
                raise PredictionError(f"coverage {coverage!r} must lie strictly between 0 and 1")
        self._calendar = CalendarCache(tz)
        self.tz = tz
        self.window_days = int(window_days)
        self.kernel_width_s = float(kernel_width_s)
        self.coverages = tuple(sorted(float(c) for c in coverages))
        self.energy_step_kwh = energy_step_kwh
        self._start_ns = None if history_start_utc is None else instant_ns(history_start_utc)
        self._sessions = ObservationStore()

    # -- observations ----------------------------------------------------------------------
    @property
    def n_sessions(self) -> int:
        """Sessions observed so far."""
        return len(self._sessions)

    def observe_sessions(self, arrival_utc: TimesLike, energy_kwh: Any) -> None:
        """Append sessions: arrival times (not going back) and requested energy [kWh] (>= 0)."""
        energy = np.asarray(energy_kwh, dtype=float).reshape(-1)
        if (energy < 0).any() or np.isnan(energy).any():
            raise PredictionError("session energies must be finite and >= 0 [kWh]")
        self._sessions.append(arrival_utc, energy)

    def observe(self, times_utc: TimesLike, values: Any) -> None:
        """The :class:`~qubit_sim.stack.predict.base.Forecaster` form of :meth:`observe_sessions`."""
        self.observe_sessions(times_utc, values)

    # -- forecasts -------------------------------------------------------------------------
    def predict(self, now_utc: TimeLike, horizon_slots: int, slot_s: int = 900) -> Forecast:
        """Energy [kWh] requested by the EVs arriving in each slot, with intervals."""
        return self._forecast(now_utc, horizon_slots, slot_s, energy=True)

    def predict_arrivals(
        self, now_utc: TimeLike, horizon_slots: int, slot_s: int = 900
    ) -> Forecast:
        """Expected number of arrivals in each slot, with Poisson intervals."""
        return self._forecast(now_utc, horizon_slots, slot_s, energy=False)

    def _forecast(
        self, now_utc: TimeLike, horizon_slots: int, slot_s: int, energy: bool
    ) -> Forecast:
        check_slots(horizon_slots, slot_s)
        slot_s, horizon_slots = int(slot_s), int(horizon_slots)
        issue = instant_ns(now_utc) // (slot_s * _NS)
        targets = issue + np.arange(horizon_slots)
        model = _DemandModel.learn(self, issue, slot_s)
        calendar = self._calendar(targets, slot_s)
        keys = calendar.weekend.astype(np.int64) * model.bins + calendar.tod_bin(slot_s)
        rate = model.rate[keys]
        lower = {c: np.zeros(horizon_slots) for c in self.coverages}
        upper = {c: np.zeros(horizon_slots) for c in self.coverages}
        if not energy:
            for c in self.coverages:
                lower[c] = poisson.ppf((1 - c) / 2, rate).astype(float)
                upper[c] = poisson.ppf((1 + c) / 2, rate).astype(float)
            mean = rate
            quantity = "ev_arrivals"
        else:
            mean = rate * model.mean_energy[keys]
            unique, position = np.unique(keys, return_inverse=True)
            bounds = model.energy_quantiles(unique, self.coverages)
            for c in self.coverages:
                lower[c], upper[c] = bounds[c][0][position], bounds[c][1][position]
            quantity = self.quantity
        return Forecast(
            slot_times(issue, horizon_slots, slot_s), mean, lower, upper, slot_s, quantity
        )


class _DemandModel:
    """Rates and energy distributions per (day type, slot-of-day) key: ``weekend * bins + bin``."""

    def __init__(
        self,
        bins: int,
        rate: np.ndarray,
        weights: np.ndarray,
        energies: np.ndarray,
        step_kwh: float,
    ) -> None:
        self.bins, self.rate, self.weights, self.energies = bins, rate, weights, energies
        self.step_kwh = step_kwh
        totals = weights.sum(axis=1)
        self.mean_energy = np.divide(
            weights @ energies, totals, out=np.zeros(len(rate)), where=totals > 0
        )

    @classmethod
    def learn(cls, forecaster: EvDemandForecaster, issue: int, slot_s: int) -> _DemandModel:
        bins = DAY_S // slot_s
        slot_ns = slot_s * _NS
        start_ns = forecaster._start_ns
        if start_ns is None:
            first = forecaster._sessions.first_ns
            if first is None or first >= issue * slot_ns:
                raise InsufficientHistoryError(
                    "no EV sessions observed before the issue time and no history_start_utc; "
                    "observe sessions or pass history_start_utc"
                )
            local = forecaster._calendar(np.array([first // slot_ns]), slot_s)
            start_ns = first - int(local.tod_s[0]) * _NS - first % slot_ns
        start = max(-(-start_ns // slot_ns), issue - forecaster.window_days * bins)
        if start >= issue:
            raise InsufficientHistoryError(
                "EV session history starts at or after the issue time; nothing to learn from"
            )
        exposure_cal = forecaster._calendar(np.arange(start, issue), slot_s)
        exposure = np.bincount(
            exposure_cal.tod_bin(slot_s) + bins * exposure_cal.weekend, minlength=2 * bins
        ).reshape(2, bins)
        times, energies = forecaster._sessions.between(start * slot_ns, issue * slot_ns)
        session_cal = forecaster._calendar(times // slot_ns, slot_s)
        session_bin = session_cal.tod_bin(slot_s)
        session_type = session_cal.weekend.astype(np.int64)
        counts = np.bincount(session_bin + bins * session_type, minlength=2 * bins).reshape(2, bins)

        kernel = _circular_kernel(bins, forecaster.kernel_width_s / slot_s)
        smooth_counts, smooth_exposure = counts @ kernel, exposure @ kernel
        pooled_rate = _ratio(smooth_counts.sum(axis=0), smooth_exposure.sum(axis=0))
        rate = np.empty((2, bins))
        for day_type in (0, 1):
            own = smooth_exposure[day_type] >= 0.5
            rate[day_type] = np.where(
                own, _ratio(smooth_counts[day_type], smooth_exposure[day_type]), pooled_rate
            )

        # weights[key, session]: kernel proximity in time of day, same day type if it has any.
        proximity = kernel[:, session_bin]  # bins x sessions
        weights = np.zeros((2 * bins, len(energies)))
        for day_type in (0, 1):
            same = session_type == day_type
            mask = same if same.any() else np.ones_like(same)
            weights[day_type * bins : (day_type + 1) * bins] = proximity * mask
        largest = float(energies.max()) if len(energies) else 1.0
        step = forecaster.energy_step_kwh or max(largest / 200.0, 1e-3)
        return cls(bins, rate.reshape(-1), weights, np.asarray(energies, dtype=float), step)

    def energy_quantiles(
        self, keys: np.ndarray, coverages: Sequence[float]
    ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """Central compound-Poisson intervals of the energy arriving in a slot [kWh], per key.

        All keys share one FFT length, so the distributions are computed as one 2-D batch.
        """
        keys = np.asarray(keys, dtype=np.int64)
        lam = self.rate[keys]
        weights = self.weights[keys]
        totals = weights.sum(axis=1)
        # With P(no arrival) = exp(-lambda) above the highest quantile every bound is 0.
        active = (np.exp(-lam) < (1 + max(coverages)) / 2 - 1e-12) & (totals > 0)
        out = {c: (np.zeros(len(keys)), np.zeros(len(keys))) for c in coverages}
        if not active.any():
            return out
        lam, weights, totals = lam[active], weights[active], totals[active]
        grid = np.rint(self.energies / self.step_kwh).astype(np.int64)
        # Sum the weights of the sessions on each grid point (reduceat over sorted sessions;
        # a one-hot matrix product would hand a large, sparse job to threaded BLAS).
        order = np.argsort(grid, kind="stable")
        points, starts = np.unique(grid[order], return_index=True)
        pmf_one = np.zeros((len(lam), int(grid.max()) + 1))
        pmf_one[:, points] = np.add.reduceat(weights[:, order], starts, axis=1)
        pmf_one /= totals[:, None]
        values = np.arange(pmf_one.shape[1]) * self.step_kwh
        mean = lam * (pmf_one @ values)
        sd = np.sqrt(lam * (pmf_one @ values**2))
        cells = float(np.max((mean + 12 * sd) / self.step_kwh)) + pmf_one.shape[1] + 2
        length = int(2 ** np.ceil(np.log2(cells)))
        spectrum = np.fft.rfft(pmf_one, length, axis=1)
        pmf_sum = np.fft.irfft(np.exp(lam[:, None] * (spectrum - 1.0)), length, axis=1)
        cdf = np.cumsum(np.clip(pmf_sum, 0.0, None), axis=1)
        cdf /= cdf[:, -1:]
        for c in coverages:
            # First grid point where the cdf reaches the tail probability (cdf is ascending).
            lo = (cdf < (1 - c) / 2 - 1e-12).sum(axis=1) * self.step_kwh
            hi = (cdf < (1 + c) / 2 - 1e-12).sum(axis=1) * self.step_kwh
            out[c][0][active], out[c][1][active] = lo, hi
        return out


def _circular_kernel(bins: int, width_bins: float) -> np.ndarray:
    """Row-normalised Gaussian kernel over a circular time of day (``width_bins`` = sd)."""
    if width_bins <= 1e-9:
        return np.eye(bins)
    offset = np.arange(bins)
    distance = np.abs(offset[:, None] - offset[None, :])
    distance = np.minimum(distance, bins - distance)
    kernel = np.exp(-0.5 * (distance / width_bins) ** 2)
    return kernel / kernel.sum(axis=1, keepdims=True)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(
        numerator, denominator, out=np.zeros_like(numerator, dtype=float), where=denominator > 0
    )
